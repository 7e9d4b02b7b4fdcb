/* container_support.h - real containers for the tests: Debian root file systems built
 * with mmdebstrap and cached under build/rootfs/, an arbiter that writes its CDI specs
 * where podman reads them, and podman and runc runs that clean up after themselves.
 *
 * podman 4.3 reads CDI specs from /etc/cdi and /var/run/cdi only, and vGPU ids repeat
 * between arbiters: a test that writes specs there holds a lock for its whole run, so
 * the tests of parallel jobs (and processes) take turns. Everything made here is undone
 * at exit, also after a failed assertion: containers removed, mounts unmounted, our
 * specs deleted. The simulated driver is "the driver": its libraries are mounted like a
 * real one's (--cdi-driver-root), and containers share the host's IPC and PID
 * namespaces, where its shared memory and processes live. Not thread-safe. */
#ifndef QV_TEST_CONTAINER_SUPPORT_H
#define QV_TEST_CONTAINER_SUPPORT_H

#include "tests/harness.h"

#include <stdbool.h>

/* Skips the test unless it runs as root with podman, runc and mmdebstrap installed. */
void qct_require(void);

/* The root file system of Debian suite ("bookworm", "bullseye"), minbase and nothing
 * else, built on first use (one builder at a time) into build/rootfs/SUITE. Borrowed,
 * lives forever. Fails the test when mmdebstrap cannot build it. */
const char *qct_rootfs(const char *suite);

/* An arbiter on this test's simulated host with a tenant dir, writing its CDI specs to
 * /var/run/cdi and embedding the simulated driver; extra holds more arguments
 * (NULL-terminated, or NULL). Takes the CDI lock first. */
typedef struct qct_arbiter {
    qt_arbiter_t *arb; /* the arbiter */
    char *tenant;      /* its --tenant-dir */
    char *driver;      /* its --cdi-driver-root: the simulated driver as a host has it */
} qct_arbiter_t;
void qct_arbiter_start(qct_arbiter_t *a, const char *const extra[]);
/* Creates a vGPU with the qgpuctl create arguments after "create" (NULL-terminated);
 * its id goes to id (64 bytes). */
void qct_vgpu(qct_arbiter_t *a, char id[64], ...) __attribute__((sentinel));

/* A container name unique to this process, "qvgpu-test-PID-N". Caller frees. Containers
 * so named are removed at exit. */
char *qct_name(void);

/* The arguments of `podman VERB` ("run", with --rm, or "create") that every test
 * container has: runc as the runtime
 * (crun cannot run containers on hosts with hybrid cgroups), no network, the host's
 * IPC and PID namespaces, the host's rlimits, the simulated host's variables, and the
 * build's tests/ mounted read-only at /opt/qvgpu-test. Then the name, the caller's
 * arguments (devices...), and --rootfs ROOT:O (an overlay: the cache is never
 * written). cmd follows. Both lists NULL-terminated. Returns argv (caller frees the
 * array only; the strings live until exit). */
const char **qct_podman_argv(const char *verb, const char *name, const char *const args[],
                             const char *rootfs, const char *const cmd[]);

/* Mounts an overlay of rootfs (never written) at a new directory and returns it
 * (caller frees the string); unmounted at exit. For runc bundles. */
char *qct_overlay(const char *rootfs);

#endif
