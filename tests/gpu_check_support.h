/* gpu_check_support.h - running scripts/gpu-check.sh and scripts/run-tests.sh from a test
 * and reading gpu-check's summary table (tests/test_gpu_check*.c).
 * Single-threaded: the test's main thread. */
#ifndef QV_TEST_GPU_CHECK_SUPPORT_H
#define QV_TEST_GPU_CHECK_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>

/* The scripts run Criterion binaries of their own: they must not inherit the calling
 * test's sandbox (with BXFI_MAP set, a Criterion binary acts as one of its workers). An
 * entry for the env lists below that unsets it. */
#define GC_NESTED "BXFI_MAP"

/* Runs scripts/NAME with args (NULL-terminated), env as qt_spawn takes it, within
 * timeout_ms; returns its exit status as qt_run; *out and *err get its output (caller
 * frees). */
int gc_script(const char *name, char **out, char **err, const char *const args[],
              const char *const env[], int timeout_ms);
/* The repository root (the build directory sits there). Caller frees. */
char *gc_repo(void);
/* The row of gpu-check's summary table for part: result ("PASS", "FAIL", "SKIP") and
 * detail (cap bytes). False when there is no such row. */
bool gc_row(const char *summary, const char *part, char result[8], char *detail, size_t cap);
/* DIR/summary.txt's contents; fails the test when it is missing. Caller frees. */
char *gc_summary(const char *dir);

#endif
