/* runner_support.c - LeakSanitizer in the test binaries of a SAN=1 build: on in the tests,
 * off in Criterion's runner.
 *
 * Criterion runs each test in a child process (a BoxFort sandbox) and its runner process
 * only starts them and gathers their reports: none of our code runs there. Its timeout
 * watchdog can leave one request of 48 bytes behind when two children with .timeout end
 * close together (--jobs 2, as scripts/run-tests.sh runs them), which LeakSanitizer
 * reports at the runner's exit, failing a binary whose tests all passed (seen in
 * test_arbiter_mover: reproducible with --jobs 2, never with --jobs 1 or a test alone).
 * Leaks stay checked wherever our code runs: in every test's child, and in every program
 * a test starts. Benches link this too; they never run Criterion's runner, so nothing
 * changes for them. Only in a SAN=1 build (QV_SAN). Single-threaded: the runner's report
 * hooks. */
#ifdef QV_SAN
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <stdbool.h>

static bool in_runner; /* set by the runner's first report hook */

ReportHook(PRE_ALL)(struct criterion_test_set *tests)
{
    (void)tests;
    in_runner = true;
}

/* Asked by LeakSanitizer before it checks, at exit. Default visibility: the sanitizer
 * runtime finds it through the dynamic symbol table. */
__attribute__((visibility("default"))) int __lsan_is_turned_off(void);
__attribute__((visibility("default"))) int __lsan_is_turned_off(void)
{
    return in_runner;
}
#endif
