/* test_demo.c - the main job, scripts/demo.sh, as a user runs it (with --no-build: `make
 * test` has built everything): every vGPU gets its row, every allocation past a quota is
 * refused, the achieved shares add up to a busy GPU and, where the arbiter schedules
 * compute, each is near its configured share; and the demo leaves nothing behind, also
 * when interrupted. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness.h"

/* What the demo creates: vm, profile as listed, quota in MiB, configured share. */
static const struct {
    const char *vm, *profile;
    unsigned quota_mib, share;
} rows[] = {
    {"demo-q2", "Q2", 2048, 20},
    {"demo-q4", "Q4", 4096, 40},
    {"demo-custom", "custom", 1536, 40},
};
enum { NROWS = sizeof rows / sizeof rows[0] };

/* <repo>/scripts/demo.sh, the repository being the build directory's parent. */
static char *demo_path(void)
{
    char *b = strdup(qt_build());
    char *p;
    cr_assert(asprintf(&p, "%s/scripts/demo.sh", dirname(b)) > 0);
    free(b);
    return p;
}

/* The arbiter has a compute scheduler when it accepts the scheduler's settings (an
 * arbiter without one refuses an unknown config key and exits 2). */
static bool arbiter_up_or_refused(void *arg)
{
    void **a = arg;
    return access(a[1], F_OK) == 0 || strstr(qt_proc_stderr(a[0]), "quantum_max_ms");
}

static bool arbiter_schedules_compute(void)
{
    char *dir = qt_tmpdir(), *conf, *sock, *state, *admin;
    cr_assert(asprintf(&conf, "%s/q.ini", dir) > 0);
    cr_assert(asprintf(&sock, "%s/run", dir) > 0);
    cr_assert(asprintf(&state, "%s/state", dir) > 0);
    cr_assert(asprintf(&admin, "%s/admin.sock", sock) > 0);
    FILE *f = fopen(conf, "w");
    cr_assert(f);
    fputs("[arbiter]\nquantum_max_ms = 50\n", f);
    fclose(f);
    char *bin = qt_build_path("qarbiter");
    const char *argv[] = {bin, "--socket-dir", sock, "--state-dir", state, "--config", conf, NULL};
    qt_proc_t *p = qt_spawn(argv, NULL);
    cr_assert(p);
    void *arg[] = {p, admin};
    cr_assert(qt_wait_until(arbiter_up_or_refused, arg, 10000), "qarbiter neither came up nor "
                                                                "refused: %s",
              qt_proc_stderr(p));
    bool up = access(admin, F_OK) == 0;
    qt_proc_kill(p, SIGTERM);
    qt_proc_wait(p, 5000);
    qt_proc_destroy(&p);
    free(bin), free(conf), free(sock), free(state), free(admin), free(dir);
    return up;
}

/* The row of vm in the demo's table: its words, at most max of them. */
static int row_words(const char *out, const char *vm, char words[][64], int max)
{
    char key[80];
    snprintf(key, sizeof key, " %s ", vm);
    for (const char *line = out, *nl; *line; line = nl ? nl + 1 : line + strlen(line)) {
        nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char buf[512];
        if (len >= sizeof buf || strncmp(line, "vg-", 3) != 0)
            continue;
        memcpy(buf, line, len);
        buf[len] = 0;
        if (!strstr(buf, key))
            continue;
        int n = 0;
        for (char *save = NULL, *w = strtok_r(buf, " ", &save); w && n < max;
             w = strtok_r(NULL, " ", &save))
            snprintf(words[n++], 64, "%s", w);
        return n;
    }
    return 0;
}

static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    cr_assert(d, "%s", path);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n == 0;
}

/* The demo's simulated host, named after its pid, is gone. */
static bool sim_host_removed(pid_t pid)
{
    char shm[128];
    snprintf(shm, sizeof shm, "/dev/shm/qsim-qvgpu-demo-%d", (int)pid);
    return access(shm, F_OK) != 0;
}

Test(demo, shows_every_vgpu_with_its_quota_enforced_and_the_shares_it_got, .timeout = 90)
{
    bool sched = arbiter_schedules_compute();
    char *script = demo_path(), *tmp = qt_tmpdir(), *tmpenv;
    cr_assert(asprintf(&tmpenv, "TMPDIR=%s", tmp) > 0);
    const char *argv[] = {script, "--no-build", "--seconds", "3", NULL};
    const char *env[] = {tmpenv, NULL};
    qt_proc_t *p = qt_spawn(argv, env);
    cr_assert(p);
    pid_t pid = qt_proc_pid(p);
    int status = qt_proc_wait(p, 60000);
    const char *out = qt_proc_stdout(p);
    cr_assert_eq(status, 0, "%s\n%s", out, qt_proc_stderr(p));

    double sum = 0;
    for (int i = 0; i < NROWS; i++) {
        /* vg-N VM PROFILE QUOTA MiB refused (CUDA_ERROR_OUT_OF_MEMORY) SHARE% ACHIEVED% */
        char w[12][64];
        int n = row_words(out, rows[i].vm, w, 12);
        cr_assert_eq(n, 9, "no row for %s, or not as expected:\n%s", rows[i].vm, out);
        cr_assert_str_eq(w[2], rows[i].profile, "%s", out);
        cr_assert_eq(atoi(w[3]), (int)rows[i].quota_mib, "%s", out);
        cr_assert_str_eq(w[5], "refused", "%s", out);
        cr_assert_str_eq(w[6], "(CUDA_ERROR_OUT_OF_MEMORY)", "%s", out);
        cr_assert_eq(atoi(w[7]), (int)rows[i].share, "%s", out);
        double achieved = atof(w[8]);
        cr_assert(achieved > 0 && achieved <= 100.5, "%s got %.1f%%\n%s", rows[i].vm, achieved,
                  out);
        if (sched)
            cr_assert(achieved >= rows[i].share - 8.0 && achieved <= rows[i].share + 8.0,
                      "%s: configured %u%%, achieved %.1f%%\n%s", rows[i].vm, rows[i].share,
                      achieved, out);
        sum += achieved;
    }
    /* Three flooding workloads keep the GPU busy; none counts time it did not get (each
     * count is exact to one kernel: 1 ms in 3 s). A loaded machine may starve a queue now
     * and then, hence the generous floor. */
    cr_assert(sum >= 75 && sum <= 100.5, "shares sum to %.1f%%\n%s", sum, out);
    cr_assert(dir_is_empty(tmp), "the demo left files in its TMPDIR");
    cr_assert(sim_host_removed(pid), "the demo left its simulated host");
    qt_proc_destroy(&p);
    free(script), free(tmp), free(tmpenv);
}

static bool workloads_running(void *arg)
{
    return strstr(qt_proc_stdout(arg), "running a workload") != NULL;
}

Test(demo, ctrl_c_stops_the_arbiter_and_the_workloads_and_removes_what_it_made, .timeout = 60)
{
    char *script = demo_path(), *tmp = qt_tmpdir(), *tmpenv;
    cr_assert(asprintf(&tmpenv, "TMPDIR=%s", tmp) > 0);
    const char *argv[] = {script, "--no-build", "--seconds", "20", NULL};
    const char *env[] = {tmpenv, NULL};
    /* A shell cannot trap a signal ignored when it started: give it the default, as a
     * terminal's foreground job has. */
    signal(SIGINT, SIG_DFL);
    qt_proc_t *p = qt_spawn(argv, env);
    cr_assert(p);
    pid_t pid = qt_proc_pid(p);
    cr_assert(qt_wait_until(workloads_running, p, 30000), "%s\n%s", qt_proc_stdout(p),
              qt_proc_stderr(p));
    qt_sleep_ms(500);
    kill(-pid, SIGINT); /* the whole process group, as Ctrl-C does */
    int status = qt_proc_wait(p, 20000);
    cr_assert_eq(status, 130, "%s\n%s", qt_proc_stdout(p), qt_proc_stderr(p));
    cr_assert(strstr(qt_proc_stderr(p), "interrupted"), "%s", qt_proc_stderr(p));
    cr_assert(dir_is_empty(tmp), "the demo left files in its TMPDIR");
    cr_assert(sim_host_removed(pid), "the demo left its simulated host");
    /* Nothing of it runs on: the arbiter and the workloads were in its process group. */
    qt_sleep_ms(200);
    cr_assert_eq(kill(-pid, 0), -1, "a process of the demo is still running");
    qt_proc_destroy(&p);
    free(script), free(tmp), free(tmpenv);
}
