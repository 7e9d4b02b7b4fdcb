/* harness.h - what every test needs: private directories, a private simulated host,
 * child processes with a chosen environment, and a real qarbiter to talk to.
 *
 * Criterion runs each test in its own process; everything made here is removed when
 * that process exits (atexit), children are killed then too. Paths come from
 * $QVGPU_BUILD, which `make test` sets to build/ (build-san/ under SAN=1).
 * Not thread-safe: call from the test's main thread. */
#ifndef QV_TEST_HARNESS_H
#define QV_TEST_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- paths and time ---------------------------------------------------------------- */

/* Absolute build directory ($QVGPU_BUILD, else ./build). Borrowed, lives forever. */
const char *qt_build(void);
/* The build directory joined with rel, e.g. qt_build_path("qarbiter"). Caller frees. */
char *qt_build_path(const char *rel);
/* A new empty directory under /tmp, removed with its contents at exit. Caller frees the
 * string, not the directory. */
char *qt_tmpdir(void);
/* A new formatted string; the process exits when memory runs out. Caller frees. */
char *qt_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t qt_now_ns(void);
void qt_sleep_ms(int ms);
/* Polls cond(arg) every millisecond until it is true (returns true) or timeout_ms pass. */
bool qt_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms);

/* ---- a private simulated host ------------------------------------------------------ */

/* Gives this test its own simulated host: sets QSIM_NAMESPACE to a fresh name and
 * QSIM_GPUS to gpus (or unsets it for the default GPU when gpus is NULL), so that
 * children inherit both; the host's shared memory is removed at exit. Returns the
 * namespace, borrowed until exit. */
const char *qt_sim_private(const char *gpus);

/* Whether the tests run on the simulated driver (build/sim, the default) rather than on
 * a real GPU's (QV_TEST_DRIVER=real, which scripts/run-tests.sh sets for
 * scripts/gpu-check.sh). A test that runs on both keeps its simulator-only checks for
 * the first; binaries that make sense only on the simulator are listed in
 * tests/sim-only.list and not run on a real GPU at all. */
bool qt_driver_simulated(void);

/* ---- child processes --------------------------------------------------------------- */

typedef struct qt_proc qt_proc_t;

/* Starts argv (argv[0] searched in PATH when it has no '/') with this process's
 * environment changed by env: each "NAME=VALUE" sets, each bare "NAME" unsets; env may
 * be NULL. stdout and stderr are captured separately. Returns NULL (and says why on
 * stderr) if the program cannot be started. */
qt_proc_t *qt_spawn(const char *const argv[], const char *const env[]);
pid_t qt_proc_pid(const qt_proc_t *self);
/* Waits up to timeout_ms for exit. Returns the exit status (0..255), 128 + the signal
 * number when killed by a signal, or -ETIMEDOUT after killing it with SIGKILL. */
int qt_proc_wait(qt_proc_t *self, int timeout_ms);
/* Sends sig; a no-op once the process was waited for. */
void qt_proc_kill(qt_proc_t *self, int sig);
/* What it wrote so far to stdout / stderr, NUL-terminated. Borrowed until the next call
 * on self or its destruction. */
const char *qt_proc_stdout(qt_proc_t *self);
const char *qt_proc_stderr(qt_proc_t *self);
/* Kills the process if it still runs, reaps it and frees *self_p; sets it to NULL. */
void qt_proc_destroy(qt_proc_t **self_p);

/* Runs argv to completion (see qt_spawn) within timeout_ms. Returns as qt_proc_wait; if
 * out/err are non-NULL they receive malloc'd copies of stdout/stderr (caller frees). */
int qt_run(const char *const argv[], const char *const env[], int timeout_ms, char **out,
           char **err);

/* "LD_PRELOAD=<build>/libqshim.so", with the ASan runtime first in a SAN=1 build, ready
 * for an env list. Borrowed, lives forever. */
const char *qt_shim_preload(void);
/* What a program we did not build (nvcc's output, python) needs to load the build's
 * libraries without the shim: "LD_PRELOAD=<the ASan runtime>" in a SAN=1 build, whose
 * libraries need it first; a bare "LD_PRELOAD" (unset) otherwise. Borrowed, lives
 * forever. */
const char *qt_foreign_preload(void);
/* The path of the ASan runtime in a SAN=1 build (a program that loads our libraries
 * must preload it), NULL otherwise. Borrowed. */
const char *qt_asan_runtime(void);

/* ---- a real arbiter ---------------------------------------------------------------- */

typedef struct qt_arbiter qt_arbiter_t;

/* Starts <build>/qarbiter with new socket and state directories, the given config file
 * contents (NULL: --config off, never the host's file), extra environment (as qt_spawn) and --http off, and
 * waits until it answers on its admin socket path. Returns NULL and prints its stderr if
 * it exits or does not come up within 5 s. Uses the simulated host of the calling test. */
qt_arbiter_t *qt_arbiter_start(const char *config, const char *const env[]);
/* The same with --http http (e.g. "127.0.0.1:0": a free port, which the arbiter logs). */
qt_arbiter_t *qt_arbiter_start_http(const char *config, const char *const env[], const char *http);
/* The same with extra qarbiter arguments (NULL-terminated, may be NULL; e.g. --tenant-dir
 * DIR), given again by qt_arbiter_restart. */
qt_arbiter_t *qt_arbiter_start_args(const char *config, const char *const env[],
                                    const char *const args[]);
const char *qt_arbiter_socket_dir(const qt_arbiter_t *self);
const char *qt_arbiter_state_dir(const qt_arbiter_t *self);
qt_proc_t *qt_arbiter_proc(qt_arbiter_t *self);
/* Kills it with sig and reaps it; the directories stay. */
void qt_arbiter_kill(qt_arbiter_t *self, int sig);
/* Starts it again on the same directories (after qt_arbiter_kill). Returns 0 or -1. */
int qt_arbiter_restart(qt_arbiter_t *self);
/* Stops it with SIGTERM (SIGKILL after 5 s) and frees *self_p; sets it to NULL. */
void qt_arbiter_destroy(qt_arbiter_t **self_p);

/* Runs <build>/qgpuctl --socket-dir <the arbiter's> followed by the NULL-terminated
 * arguments, within 10 s. Returns its exit status; *out / *err (if non-NULL) receive its
 * stdout / stderr, malloc'd. */
int qt_ctl(const qt_arbiter_t *arb, char **out, char **err, ...) __attribute__((sentinel));

#endif
