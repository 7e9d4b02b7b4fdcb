/* test_arbiter_config.c - defaults, the INI file, and errors that name file and line. */
#include "arbiter/config.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes text to a new file and returns its path (caller frees). */
static char *write_conf(const char *text)
{
    char *dir = qt_tmpdir();
    char *path;
    cr_assert(asprintf(&path, "%s/qarbiter.conf", dir) > 0);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    free(dir);
    return path;
}

/* Loads text; returns the result and leaves the error line in err. */
static int load(qa_config_t *cfg, const char *text, char *err)
{
    qa_config_defaults(cfg);
    char *path = write_conf(text);
    int rc = qa_config_load(cfg, path, err);
    free(path);
    return rc;
}

Test(qa_config, defaults_are_the_contract_profiles_spread_and_no_oversubscription)
{
    qa_config_t cfg;
    qa_config_defaults(&cfg);
    cr_assert_eq(cfg.placement, QA_SPREAD);
    cr_assert_float_eq(cfg.oversub_memory, 1.0, 1e-12);
    cr_assert_float_eq(cfg.oversub_share, 1.0, 1e-12);
    const char *names[] = {"Q1", "Q2", "Q4", "Q8"};
    unsigned shares[] = {10, 20, 40, 80};
    for (int i = 0; i < 4; i++) {
        const qa_profile_t *p = qa_config_profile(&cfg, names[i]);
        cr_assert_not_null(p);
        cr_assert_eq(p->memory_mb, 1024u << i);
        cr_assert_eq(p->share, shares[i]);
        cr_assert_eq(p->limit, 0);
    }
    cr_assert_null(qa_config_profile(&cfg, "Q3"));
    /* compute scheduling, as PROTOCOL.md "Compute tokens" states */
    cr_assert_eq(cfg.sched_window_ms, 200);
    cr_assert_eq(cfg.quantum_min_ms, 2);
    cr_assert_eq(cfg.quantum_max_ms, 50);
    cr_assert_eq(cfg.lease_grace_ms, 1000);
    cr_assert_eq(cfg.burst_ms, 2);
    cr_assert_eq(cfg.burst_below_pct, 75);
    cr_assert_eq(cfg.preempt_after_ms, 2);
    cr_assert_eq(cfg.max_tenant_connections, 4096);
    cr_assert_eq(cfg.reconnect_grace_ms, 800);
    /* connections that have not said hello (docs/arbiter.md) */
    cr_assert_eq(cfg.max_pending_connections, 1024);
    cr_assert_eq(cfg.max_pending_per_uid, 128);
    cr_assert_eq(cfg.hello_timeout_ms, 3000);
}

Test(qa_config, reads_every_setting_and_custom_profiles)
{
    qa_config_t cfg;
    char err[QP_ERR_LEN];
    int rc = load(&cfg,
                  "# a comment\n"
                  "[arbiter]\n"
                  "placement = pack\n"
                  "oversub_memory = 1.5\n"
                  "oversub_share = 2\n"
                  "util_weight = 0\n"
                  "log_level = debug\n"
                  "heartbeat_timeout_ms = 3000\n"
                  "reclaim_timeout_ms = 250\n"
                  "sched_window_ms = 100\n"
                  "quantum_min_ms = 1\n"
                  "quantum_max_ms = 20\n"
                  "lease_grace_ms = 400\n"
                  "burst_ms = 0\n"
                  "burst_below_pct = 50\n"
                  "preempt_after_ms = 5\n"
                  "max_tenant_connections = 100\n"
                  "max_pending_connections = 20\n"
                  "max_pending_per_uid = 0\n"
                  "hello_timeout_ms = 250\n"
                  "reconnect_grace_ms = 0\n"
                  "\n"
                  "[profile Q16]\n"
                  "memory = 16GiB\n"
                  "share = 60\n"
                  "limit = 90\n"
                  "[profile tiny.gpu]\n"
                  "memory = 256MiB ; inline comment\n"
                  "share = 5\n",
                  err);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(cfg.placement, QA_PACK);
    cr_assert_float_eq(cfg.oversub_memory, 1.5, 1e-12);
    cr_assert_float_eq(cfg.oversub_share, 2.0, 1e-12);
    cr_assert_float_eq(cfg.util_weight, 0.0, 1e-12);
    cr_assert_eq(cfg.log_level, QA_DEBUG);
    cr_assert_eq(cfg.heartbeat_timeout_ms, 3000);
    cr_assert_eq(cfg.reclaim_timeout_ms, 250);
    cr_assert_eq(cfg.sched_window_ms, 100);
    cr_assert_eq(cfg.quantum_min_ms, 1);
    cr_assert_eq(cfg.quantum_max_ms, 20);
    cr_assert_eq(cfg.lease_grace_ms, 400);
    cr_assert_eq(cfg.burst_ms, 0);
    cr_assert_eq(cfg.burst_below_pct, 50);
    cr_assert_eq(cfg.preempt_after_ms, 5);
    cr_assert_eq(cfg.max_tenant_connections, 100);
    cr_assert_eq(cfg.max_pending_connections, 20);
    cr_assert_eq(cfg.max_pending_per_uid, 0);
    cr_assert_eq(cfg.hello_timeout_ms, 250);
    cr_assert_eq(cfg.reconnect_grace_ms, 0);
    const qa_profile_t *p = qa_config_profile(&cfg, "Q16");
    cr_assert_not_null(p);
    cr_assert_eq(p->memory_mb, 16384);
    cr_assert_eq(p->share, 60);
    cr_assert_eq(p->limit, 90);
    p = qa_config_profile(&cfg, "tiny.gpu");
    cr_assert_not_null(p);
    cr_assert_eq(p->memory_mb, 256);
    cr_assert_not_null(qa_config_profile(&cfg, "Q1"), "built-ins stay");
}

/* Each bad file must fail naming the file, the right line and the problem. */
/* A config text refused at line, in one line that says words. */
struct bad {
    const char *text;
    int line;
    const char *words;
};

static void refused(const struct bad *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        qa_config_t cfg;
        char err[QP_ERR_LEN];
        cr_assert_eq(load(&cfg, cases[i].text, err), -EINVAL, "case %zu accepted", i);
        char where[32];
        snprintf(where, sizeof where, "qarbiter.conf:%d: ", cases[i].line);
        cr_assert(strstr(err, where), "case %zu: want line %d in: %s", i, cases[i].line, err);
        cr_assert(strstr(err, cases[i].words), "case %zu: want '%s' in: %s", i, cases[i].words,
                  err);
        cr_assert_null(strchr(err, '\n'));
    }
}

Test(qa_config, names_file_line_and_problem)
{
    static const struct bad cases[] = {
        {"[arbiter]\nplacement = random\n", 2, "placement 'random'"},
        {"[arbiter]\n\noversub_memory = -1\n", 3, "oversub_memory"},
        {"[arbiter]\noversub_share = lots\n", 2, "oversub_share"},
        {"[arbiter]\nlog_level = loud\n", 2, "log_level"},
        {"[arbiter]\nheartbeat_timeout_ms = 5\n", 2, "heartbeat_timeout_ms"},
        {"[arbiter]\nheartbeat_timeout_ms = 999\n", 2, "heartbeat every 500 ms"},
        {"[arbiter]\ncolour = blue\n", 2, "unknown key 'colour'"},
        {"[arbiter]\nsched_window_ms = 5\n", 2, "sched_window_ms '5'"},
        {"[arbiter]\nquantum_min_ms = 0\n", 2, "quantum_min_ms '0'"},
        {"[arbiter]\nquantum_max_ms = 2s\n", 2, "quantum_max_ms '2s'"},
        {"[arbiter]\nlease_grace_ms = -1\n", 2, "lease_grace_ms '-1'"},
        {"[arbiter]\nburst_below_pct = 0\n", 2, "burst_below_pct '0'"},
        {"[arbiter]\npreempt_after_ms = 2000\n", 2, "preempt_after_ms '2000'"},
        {"[arbiter]\nmax_tenant_connections = 0\n", 2, "max_tenant_connections '0'"},
        {"[arbiter]\nmax_pending_connections = 0\n", 2, "max_pending_connections '0'"},
        {"[arbiter]\nmax_pending_per_uid = -1\n", 2, "max_pending_per_uid '-1'"},
        {"[arbiter]\nhello_timeout_ms = 10\n", 2, "hello_timeout_ms '10'"},
        {"[arbiter]\nreconnect_grace_ms = 20000\n", 2, "reconnect_grace_ms '20000'"},
        {"[gpus]\nx = 1\n", 2, "unknown section [gpus]"},
        {"placement = pack\n", 1, "outside any section"},
        {"[arbiter]\nthis line is wrong\n", 2, "syntax error"},
        {"[profile Q2]\nmemory = 4GiB\n", 2, "built in"},
        {"[profile custom]\nmemory = 4GiB\n", 2, "reserved"},
        {"[profile bad name!]\nmemory = 4GiB\n", 2, "profile name"},
        {"[profile big]\nmemory = 4 parsecs\n", 2, "unknown unit"},
        {"[profile big]\nmemory = 4GiB\nshare = 101\n", 3, "share '101'"},
        {"[profile big]\nmemory = 4GiB\nshare = 10\nlimit = x\n", 4, "limit 'x'"},
        {"[profile big]\nmemory = 4GiB\ncolour = 1\n", 3, "unknown key 'colour'"},
        {"[arbiter]\nplacement = pack\n[profile half]\nmemory = 4GiB\n", 4,
         "needs both 'memory' and 'share'"},
        {"[profile capped]\nmemory = 4GiB\nshare = 50\nlimit = 20\n", 2, "below its share"},
        {"[balance]\ninterval_s = -5\n", 2, "interval_s '-5'"},
        {"[balance]\nhigh = 101\n", 2, "high '101' must be a percentage from 1 to 100"},
        {"[balance]\n\nlow = 100\n", 3, "low '100'"},
        {"[balance]\nmemory = yes\n", 2, "memory 'yes' is neither 'on' nor 'off'"},
        {"[balance]\ncooldown_intervals = many\n", 2, "cooldown_intervals 'many'"},
        {"[balance]\nhigh = 80\nhigh = 90\n", 3, "'high' is set twice"},
        {"[balance]\nrate = 1\n", 2, "unknown key 'rate' in [balance]"},
    };
    refused(cases, sizeof cases / sizeof cases[0]);
}

Test(qa_config, a_shortest_lease_above_the_longest_is_refused)
{
    qa_config_t cfg;
    char err[QP_ERR_LEN];
    cr_assert_eq(load(&cfg, "[arbiter]\nquantum_min_ms = 60\n", err), -EINVAL);
    cr_assert(strstr(err, "qarbiter.conf: quantum_min_ms 60 is above quantum_max_ms 50"), "%s",
              err);
    cr_assert_eq(load(&cfg, "[arbiter]\nquantum_min_ms = 60\nquantum_max_ms = 60\n", err), 0,
                 "%s", err);
    cr_assert_eq(load(&cfg, "[arbiter]\nheartbeat_timeout_ms = 1000\n", err), 0,
                 "two heartbeat periods are enough: %s", err);
}

Test(qa_config, an_unreadable_file_is_named)
{
    qa_config_t cfg;
    qa_config_defaults(&cfg);
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_config_load(&cfg, "/nonexistent/qarbiter.conf", err), -EINVAL);
    cr_assert(strstr(err, "/nonexistent/qarbiter.conf: cannot read"), "%s", err);
}

/* Regression: a directory was read as an empty file (every default silently kept) and
 * /dev/zero was read for ever, hanging the start. */
Test(qa_config, a_directory_or_device_is_refused_at_once)
{
    qa_config_t cfg;
    qa_config_defaults(&cfg);
    char err[QP_ERR_LEN];
    char *dir = qt_tmpdir();
    cr_assert_eq(qa_config_load(&cfg, dir, err), -EINVAL);
    cr_assert(strstr(err, dir) && strstr(err, "not a regular file"), "%s", err);
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(qa_config_load(&cfg, "/dev/zero", err), -EINVAL);
    cr_assert(strstr(err, "/dev/zero: not a regular file"), "%s", err);
    cr_assert_lt(qt_now_ns() - t0, 1000000000ull, "answered at once");
    free(dir);
}

Test(qa_config, a_file_larger_than_any_config_is_refused)
{
    qa_config_t cfg;
    char err[QP_ERR_LEN];
    size_t n = (1u << 20) + 100;
    char *text = malloc(n + 1);
    memset(text, ';', n);
    text[n] = '\0';
    cr_assert_eq(load(&cfg, text, err), -EINVAL);
    cr_assert(strstr(err, "qarbiter.conf: larger than 1 MiB"), "%s", err);
    free(text);
}

/* Regression: the second of two values silently won. */
Test(qa_config, a_key_or_profile_given_twice_is_refused_naming_both_lines)
{
    static const struct bad cases[] = {
        {"[arbiter]\nplacement = pack\nplacement = spread\n", 3,
         "'placement' is set twice (first at line 2)"},
        {"[arbiter]\nquantum_max_ms = 40\n[profile a]\nmemory = 1GiB\nshare = 5\n"
         "[arbiter]\nquantum_max_ms = 30\n",
         7, "'quantum_max_ms' is set twice (first at line 2)"},
        {"[profile a]\nmemory = 1GiB\nshare = 5\nmemory = 2GiB\n", 4,
         "'memory' is set twice in profile a (first at line 2)"},
        {"[profile a]\nmemory = 1GiB\nshare = 5\n[arbiter]\nplacement = pack\n[profile a]\n"
         "limit = 50\n",
         7, "profile a is defined twice (first at line 2)"},
        {"[arbiter]\nplacement = pack\n  spread\n", 3, "'placement' is set twice"},
    };
    refused(cases, sizeof cases / sizeof cases[0]);
}

/* Regression: sched_window_ms = 10 with quantum_min_ms = 1000 was accepted, and a
 * memory request could be held longer than the shim waits for its answer. */
Test(qa_config, settings_that_contradict_each_other_are_refused)
{
    struct {
        const char *text;
        const char *words;
    } cases[] = {
        {"[arbiter]\nsched_window_ms = 10\nquantum_min_ms = 1000\nquantum_max_ms = 1000\n",
         "quantum_max_ms 1000 is above sched_window_ms 10"},
        {"[arbiter]\nsched_window_ms = 40\n", "quantum_max_ms 50 is above sched_window_ms 40"},
        {"[arbiter]\nquantum_max_ms = 10\nburst_ms = 20\n",
         "burst_ms 20 is above quantum_max_ms 10"},
        {"[arbiter]\nreclaim_timeout_ms = 1200\n",
         "reconnect_grace_ms 800 + reclaim_timeout_ms 1200 is above 1400 ms"},
        {"[arbiter]\nreconnect_grace_ms = 1000\nreclaim_timeout_ms = 500\n",
         "reconnect_grace_ms 1000 + reclaim_timeout_ms 500 is above 1400 ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qa_config_t cfg;
        char err[QP_ERR_LEN];
        cr_assert_eq(load(&cfg, cases[i].text, err), -EINVAL, "case %zu accepted", i);
        cr_assert(strstr(err, "qarbiter.conf: "), "case %zu: %s", i, err);
        cr_assert(strstr(err, cases[i].words), "case %zu: want '%s' in: %s", i, cases[i].words,
                  err);
    }
    qa_config_t cfg;
    char err[QP_ERR_LEN];
    cr_assert_eq(load(&cfg,
                      "[arbiter]\nsched_window_ms = 50\nreconnect_grace_ms = 0\n"
                      "reclaim_timeout_ms = 1400\n",
                      err),
                 0, "%s", err);
}

/* What `qarbiter --print-config` prints (and the packaged file is made from). */
static char *written(const qa_config_t *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    cr_assert_eq(qa_config_write(cfg, f), 0);
    fclose(f);
    return text;
}

Test(qa_config, balance_defaults_to_every_minute_and_refuses_a_low_mark_at_or_over_the_high)
{
    qa_config_t cfg;
    char err[QP_ERR_LEN];
    qa_config_defaults(&cfg);
    cr_assert_eq(cfg.balance_interval_s, 60);
    cr_assert_eq(cfg.balance_high, 80);
    cr_assert_eq(cfg.balance_low, 40);
    cr_assert(cfg.balance_memory);
    cr_assert_eq(cfg.balance_cooldown, 3);
    cr_assert_eq(load(&cfg, "[balance]\ninterval_s = 0\nhigh = 90\nlow = 10\nmemory = off\n"
                            "cooldown_intervals = 5\n",
                      err),
                 0, "%s", err);
    cr_assert_eq(cfg.balance_interval_s, 0, "off");
    cr_assert_eq(cfg.balance_high, 90);
    cr_assert_eq(cfg.balance_low, 10);
    cr_assert_not(cfg.balance_memory);
    cr_assert_eq(cfg.balance_cooldown, 5);
    cr_assert_eq(load(&cfg, "[balance]\nhigh = 50\nlow = 50\n", err), -EINVAL);
    cr_assert(strstr(err, "[balance] low 50 is not below high 50"), "%s", err);
}

Test(qa_config, what_it_writes_reads_back_as_the_same_settings)
{
    qa_config_t defaults, back;
    char err[QP_ERR_LEN];
    qa_config_defaults(&defaults);
    char *text = written(&defaults);
    cr_assert_eq(load(&back, text, err), 0, "%s\n%s", err, text);
    cr_assert_eq(memcmp(&defaults, &back, sizeof back), 0, "the defaults changed:\n%s", text);
    free(text);

    qa_config_t cfg;
    cr_assert_eq(load(&cfg,
                      "[arbiter]\nplacement = pack\noversub_memory = 1.5\noversub_share = 2\n"
                      "util_weight = 0\nlog_level = debug\nheartbeat_timeout_ms = 3000\n"
                      "reclaim_timeout_ms = 250\nsched_window_ms = 100\nquantum_min_ms = 1\n"
                      "quantum_max_ms = 20\nlease_grace_ms = 400\nmax_tenant_connections = 100\n"
                      "reconnect_grace_ms = 0\n"
                      "[audit]\nunmanaged = ignore\nover_quota = kill\ngrace_ms = 900\n"
                      "charge = allocated\n"
                      "[balance]\ninterval_s = 30\nhigh = 70\nlow = 20\nmemory = off\n"
                      "cooldown_intervals = 4\n"
                      "[profile Q16]\nmemory = 16GiB\nshare = 60\nlimit = 90\n"
                      "[profile tiny.gpu]\nmemory = 256MiB\nshare = 5\n",
                      err),
                 0, "%s", err);
    text = written(&cfg);
    cr_assert_eq(load(&back, text, err), 0, "%s\n%s", err, text);
    cr_assert_eq(memcmp(&cfg, &back, sizeof back), 0, "not the same settings:\n%s", text);
    cr_assert(strstr(text, "placement = pack\n") && strstr(text, "oversub_memory = 1.5\n") &&
                  strstr(text, "oversub_share = 2.0\n") && strstr(text, "charge = allocated\n") &&
                  strstr(text, "[balance]\n") && strstr(text, "memory = off\n") &&
                  strstr(text, "[profile Q16]\nmemory = 16384MiB\nshare = 60\nlimit = 90\n") &&
                  strstr(text, "[profile tiny.gpu]\nmemory = 256MiB\nshare = 5\n") &&
                  !strstr(text, "limit = 0"),
              "%s", text);
    free(text);
}

Test(qa_config, every_key_it_writes_says_what_it_does)
{
    qa_config_t cfg;
    qa_config_defaults(&cfg);
    char *text = written(&cfg);
    int keys = 0;
    const char *prev = "";
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != '#' && line[0] != '[') {
            cr_assert(strstr(line, " = "), "%s", line);
            cr_assert_eq(prev[0], '#', "no comment above '%s'", line);
            keys++;
        }
        cr_assert_leq(strlen(line), 90, "a line longer than 90 columns: %s", line);
        prev = line;
    }
    cr_assert_geq(keys, 17, "%d keys", keys);
    free(text);
}
