/* test_slurm.c - spank_qvgpu.so in a real Slurm cluster (tests/slurm_support.h): a job
 * that asks for --vgpu runs in a vGPU of its own, made for VM slurm-<jobid> when the job
 * starts and destroyed when it ends however it ends; its tasks are held to the quota and
 * the share; a bad value is refused at submission; with the arbiter down the job fails with
 * the reason while the node stays in service, and `qgpuctl gc` removes what jobs that ended
 * meanwhile left behind. Each test starts its own cluster. */
#include "tests/shim_support.h"
#include "tests/slurm_support.h"

#include <criterion/criterion.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static cluster_t *start_with(int gpus, const char *plugin_args)
{
    if (!cluster_available()) {
        char *plugin = qt_build_path("spank_qvgpu.so");
        bool built = access(plugin, R_OK) == 0;
        free(plugin);
        /* no libslurm-dev: no plugin to test; with it, the daemons must be there too */
        cr_assert(!built, "slurmctld, slurmd or munged missing: run scripts/install-deps.sh");
        cr_skip_test("spank_qvgpu.so is not built (no libslurm-dev)");
    }
    return cluster_start(gpus, plugin_args);
}

static cluster_t *start(int gpus)
{
    return start_with(gpus, NULL);
}

/* Under SAN=1 a job's tasks preload the ASan runtime (the shim is instrumented), so an srun
 * run inside a job would have Slurm's own leaks at exit reported and fail: not ours to
 * check. */
#ifdef QV_SAN
static const char *const job_env[] = {"ASAN_OPTIONS=detect_leaks=0", NULL};
#else
static const char *const *const job_env = NULL;
#endif

/* Runs a Slurm command line (NULL-terminated words) to completion within 60 s; returns its
 * status, out/err as qt_run. */
static int slurm(cluster_t *c, char **out, char **err, ...) __attribute__((sentinel));
static int slurm(cluster_t *c, char **out, char **err, ...)
{
    const char *argv[32];
    int n = 0;
    va_list ap;
    va_start(ap, err);
    const char *w;
    while ((w = va_arg(ap, const char *)) && n < 31)
        argv[n++] = w;
    va_end(ap);
    argv[n] = NULL;
    return cluster_run(c, argv, job_env, 60000, out, err);
}

/* sbatch OPTION --wrap WRAP: the new job's id; fails the test when it is refused. */
static unsigned sbatch(cluster_t *c, const char *option, const char *wrap)
{
    char *out = NULL, *err = NULL;
    int rc = slurm(c, &out, &err, "sbatch", "--parsable", "-o", "/dev/null", option, "--wrap", wrap,
                   NULL);
    cr_assert_eq(rc, 0, "sbatch: %s", err);
    unsigned job = (unsigned)strtoul(out, NULL, 10);
    cr_assert_gt(job, 0, "%s", out);
    free(out);
    free(err);
    return job;
}

/* The contents of file path, for a failure message (leaked: the test is ending). */
static char *slurp(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

static char *vm_of(unsigned job)
{
    char *vm;
    cr_assert_geq(asprintf(&vm, "slurm-%u", job), 0);
    return vm;
}

/* Splits text into its lines (at most max), in place. Returns how many. */
static int lines(char *text, char **line, int max)
{
    int n = 0;
    for (char *save, *l = strtok_r(text, "\n", &save); l && n < max;
         l = strtok_r(NULL, "\n", &save))
        line[n++] = l;
    return n;
}

static int find_libm(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    if (info->dlpi_name && strstr(info->dlpi_name, "/libm.so")) {
        *(const char **)data = info->dlpi_name;
        return 1;
    }
    return 0;
}

Test(slurm, the_plugin_exports_only_spank_entry_points_and_links_no_zeromq)
{
    char *plugin = qt_build_path("spank_qvgpu.so");
    if (access(plugin, R_OK) != 0)
        cr_skip_test("spank_qvgpu.so is not built (no libslurm-dev)");
    const char *nm[] = {"nm", "-D", "--defined-only", "--format=just-symbols", plugin, NULL};
    char *out = NULL, *err = NULL, *l[32];
    cr_assert_eq(qt_run(nm, NULL, 10000, &out, &err), 0, "%s", err);
    int n = lines(out, l, 32);
    static const char *const allowed[] = {"plugin_name",           "plugin_type",
                                          "plugin_version",        "spank_plugin_version",
                                          "slurm_spank_init",      "slurm_spank_init_post_opt",
                                          "slurm_spank_task_init", "slurm_spank_job_prolog",
                                          "slurm_spank_job_epilog"};
    cr_assert_eq(n, 9, "exports %d symbols", n);
    for (int i = 0; i < n; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof allowed / sizeof *allowed; k++)
            ok |= strcmp(l[i], allowed[k]) == 0;
        cr_assert(ok, "exports %s", l[i]);
    }
    free(out), free(err);
    const char *readelf[] = {"readelf", "-d", plugin, NULL};
    cr_assert_eq(qt_run(readelf, NULL, 10000, &out, &err), 0, "%s", err);
    cr_assert_null(strstr(out, "libzmq"), "%s", out);
    cr_assert_null(strstr(out, "libmsgpack"), "%s", out);
    cr_assert_null(strstr(out, "libqvgpu"), "%s", out);
    free(out), free(err), free(plugin);
}

Test(slurm, srun_vgpu_q1_runs_in_a_vgpu_that_lives_as_long_as_the_job)
{
    cluster_t *c = start(1);
    char *go = cluster_path(c, "go");
    /* a library of the user's own, preloaded, which the job keeps */
    const char *libm = NULL;
    dl_iterate_phdr(find_libm, &libm);
    cr_assert_not_null(libm);
    char *user_preload, *script;
    cr_assert_geq(asprintf(&user_preload, "LD_PRELOAD=%s", libm), 0);
    cr_assert_geq(asprintf(&script,
                           "printenv SLURM_JOB_ID QVGPU_VGPU QVGPU_SECRET QVGPU_SOCKET_DIR "
                           "CUDA_VISIBLE_DEVICES LD_PRELOAD; while [ ! -e %s/now ]; do sleep "
                           "0.05; done",
                           go),
                  0);
    const char *argv[] = {"srun", "--vgpu=Q1", "sh", "-c", script, NULL};
    const char *env[] = {user_preload, NULL};
    qt_proc_t *p = cluster_spawn(c, argv, env);
    for (int t = 0; t < 30000 && qts_count_lines(qt_proc_stdout(p), "") < 6; t += 20)
        qt_sleep_ms(20);
    char *text = strdup(qt_proc_stdout(p)), *l[8];
    cr_assert_eq(lines(text, l, 8), 6, "stdout:\n%s\nstderr:\n%s\n%s", qt_proc_stdout(p),
                 qt_proc_stderr(p), cluster_logs(c));
    unsigned job = (unsigned)strtoul(l[0], NULL, 10);
    char *vm = vm_of(job);

    /* the job's environment */
    cr_assert(strncmp(l[1], "vg-", 3) == 0, "QVGPU_VGPU=%s", l[1]);
    cr_assert_eq(strlen(l[2]), 32, "QVGPU_SECRET=%s", l[2]);
    cr_assert_eq(strspn(l[2], "0123456789abcdef"), 32);
    cr_assert_str_eq(l[3], cluster_tenant_dir(c), "QVGPU_SOCKET_DIR: the tenant dir");
    char uuids[1][64];
    cr_assert_eq(qts_gpu_uuids(uuids, 1), 1);
    cr_assert_str_eq(l[4], uuids[0], "CUDA_VISIBLE_DEVICES: the vGPU's GPU");
    char *shim = qt_build_path("libqshim.so");
    const char *want = qt_shim_preload() + strlen("LD_PRELOAD=");
    /* the user's library before the shim (a sanitizer's runtime first, under SAN=1) */
    char expect[4096];
    size_t head = strlen(want) - strlen(shim);
    snprintf(expect, sizeof expect, "%.*s%s:%s", (int)head, want, libm, shim);
    cr_assert_str_eq(l[5], expect, "LD_PRELOAD");

    /* while the job runs: its vGPU, and the root-only file its steps read */
    char id[32];
    int gpu = -1;
    cr_assert(cluster_vgpu(c, vm, id, &gpu), "no vGPU for %s while the job runs", vm);
    cr_assert_str_eq(id, l[1]);
    cr_assert_eq(gpu, 0);
    char record[4096];
    snprintf(record, sizeof record, "%s/%u", cluster_state_dir(c), job);
    struct stat st;
    cr_assert_eq(stat(record, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_uid, 0);

    /* after it: nothing */
    char *now;
    cr_assert_geq(asprintf(&now, "%s/now", go), 0);
    fclose(fopen(now, "w"));
    cr_assert_eq(qt_proc_wait(p, 30000), 0, "%s", qt_proc_stderr(p));
    cr_assert(cluster_wait_vgpu(c, vm, false, 15000), "%s is still there after the job", vm);
    cr_assert(cluster_wait_idle(c, 15000));
    cr_assert_neq(access(record, F_OK), 0, "the job's file is removed");
    qt_proc_destroy(&p);
    cluster_stop(&c);
    free(now), free(vm), free(text), free(shim), free(script), free(user_preload), free(go);
}

Test(slurm, every_step_of_a_batch_or_salloc_job_shares_its_vgpu_and_other_jobs_get_none)
{
    cluster_t *c = start(1);
    char *out = NULL, *err = NULL, *l[8];
    char *dir = cluster_path(c, "out"), *o;
    cr_assert_geq(asprintf(&o, "%s/batch.out", dir), 0);
    int rc = slurm(c, &out, &err, "sbatch", "--wait", "--vgpu=Q2", "-o", o, "--wrap",
                   "printenv QVGPU_VGPU; srun printenv QVGPU_VGPU; srun printenv QVGPU_VGPU", NULL);
    cr_assert_eq(rc, 0, "%s%s", err, slurp(o));
    free(out), free(err);
    FILE *f = fopen(o, "r");
    cr_assert_not_null(f);
    char text[1024] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    cr_assert_eq(lines(text, l, 8), 3, "%s", text);
    cr_assert(strncmp(l[0], "vg-", 3) == 0, "%s", l[0]);
    cr_assert_str_eq(l[1], l[0], "a step of the batch job");
    cr_assert_str_eq(l[2], l[0]);

    rc = slurm(c, &out, &err, "salloc", "--vgpu=Q1", "srun", "printenv", "QVGPU_VGPU", NULL);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(strncmp(out, "vg-", 3) == 0, "salloc's step: %s", out);
    /* its line without the newline: with it, no id could ever equal l[0] */
    out[strcspn(out, "\n")] = '\0';
    cr_assert_str_neq(out, l[0], "another job, another vGPU");
    free(out), free(err);

    /* a step cannot ask for a vGPU its job did not get: refused, not run without one */
    char *o2;
    cr_assert_geq(asprintf(&o2, "%s/step.out", dir), 0);
    rc = slurm(c, &out, &err, "sbatch", "--wait", "-o", o2, "--wrap",
               "srun --vgpu=Q1 echo ran; echo batch", NULL);
    free(out), free(err);
    f = fopen(o2, "r");
    cr_assert_not_null(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    cr_assert_null(strstr(text, "ran\n"), "%s", text);
    cr_assert(strstr(text, "has no vGPU on this node: the job prolog made none"), "%s", text);
    cr_assert(strstr(text, "batch\n"), "the batch script itself ran: %s", text);
    free(o2);

    /* a job that did not ask is left alone */
    rc = slurm(c, &out, &err, "srun", "sh", "-c", "printenv QVGPU_VGPU LD_PRELOAD || echo none",
               NULL);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_str_eq(out, "none\n");
    free(out), free(err);
    cr_assert(cluster_wait_idle(c, 15000));
    cr_assert_eq(qt_ctl(cluster_arbiter(c), &out, NULL, "list", NULL), 0);
    cr_assert_eq(qts_count_lines(out, "vg-"), 0, "left behind:\n%s", out);
    free(out);
    cluster_stop(&c);
    free(o), free(dir);
}

Test(slurm, a_job_of_an_unprivileged_user_gets_its_vgpu_but_not_the_file_it_came_from)
{
    cluster_t *c = start(1);
    char *work = qt_build_path("tests/progs/shim_work"), *script;
    cr_assert_geq(asprintf(&script,
                           "id -u; printenv QVGPU_VGPU; cat %s/$SLURM_JOB_ID >/dev/null 2>&1 && "
                           "echo readable || echo unreadable; %s init alloc:cuMemAlloc_v2:direct:"
                           "805306368 alloc:cuMemAlloc_v2:direct:536870912",
                           cluster_state_dir(c), work),
                  0);
    /* submitted as nobody: munge vouches for the uid, the job runs as nobody */
    const char *argv[] = {"setpriv",
                          "--reuid=65534",
                          "--regid=65534",
                          "--clear-groups",
                          "srun",
                          "--vgpu=Q1",
                          "sh",
                          "-c",
                          script,
                          NULL};
    char *out = NULL, *err = NULL, *l[8];
    int rc = cluster_run(c, argv, job_env, 60000, &out, &err);
    cr_assert_eq(rc, 0, "%s\n%s", out, err);
    char *text = strdup(out);
    cr_assert_eq(lines(text, l, 8), 6, "%s", out);
    cr_assert_str_eq(l[0], "65534");
    cr_assert(strncmp(l[1], "vg-", 3) == 0, "QVGPU_VGPU=%s", l[1]);
    cr_assert_str_eq(l[2], "unreadable", "the job's file holds the secret: root's alone");
    cr_assert_eq(qts_field_at(out, "alloc ", 0, 2), 0, "%s", out);
    cr_assert_eq(qts_field_at(out, "alloc ", 1, 2), 2, "held to the quota:\n%s", out);
    free(text), free(out), free(err), free(script), free(work);
    cluster_stop(&c);
}

Test(slurm, a_q1_job_cannot_allocate_past_1_gib_and_sees_1_gib)
{
    cluster_t *c = start(1);
    char *work = qt_build_path("tests/progs/shim_work");
    char *out = NULL, *err = NULL;
    int rc = slurm(c, &out, &err, "srun", "--vgpu=Q1", work, "init", "info:direct",
                   "totalmem:direct", "alloc:cuMemAlloc_v2:direct:805306368",
                   "alloc:cuMemAlloc_v2:direct:536870912", "info:direct", NULL);
    cr_assert_eq(rc, 0, "%s\n%s", out, err);
    cr_assert_eq(qts_field(out, "init ", 0), 0);
    cr_assert_eq(qts_field_at(out, "info ", 0, 2), 1ll << 30, "total = the quota:\n%s", out);
    cr_assert_eq(qts_field_at(out, "info ", 0, 1), 1ll << 30, "free = all of it:\n%s", out);
    cr_assert_eq(qts_field(out, "totalmem ", 1), 1ll << 30);
    cr_assert_eq(qts_field_at(out, "alloc ", 0, 2), 0, "768 MiB fit:\n%s", out);
    cr_assert_eq(qts_field_at(out, "alloc ", 1, 2), 2,
                 "512 MiB more is CUDA_ERROR_OUT_OF_MEMORY:\n%s", out);
    /* The job's context takes the rest: the arbiter charges what the driver keeps for it. */
    cr_assert_eq(qts_field_at(out, "info ", 1, 1), (256ll << 20) - (long long)QTS_CTX,
                 "free after 768 MiB:\n%s", out);
    free(out), free(err), free(work);
    cluster_stop(&c);
}

Test(slurm, scancel_of_a_batch_job_destroys_its_vgpu)
{
    cluster_t *c = start(1);
    unsigned job = sbatch(c, "--vgpu=Q2", "sleep 300");
    char *vm = vm_of(job), id[32];
    cr_assert(cluster_wait_vgpu(c, vm, true, 30000), "no vGPU for %s\n%s", vm, cluster_logs(c));
    char *state = cluster_job_state(c, job);
    cr_assert_str_eq(state, "RUNNING");
    free(state);
    cr_assert(cluster_vgpu(c, vm, id, NULL));
    char jobid[16];
    snprintf(jobid, sizeof jobid, "%u", job);
    cr_assert_eq(slurm(c, NULL, NULL, "scancel", jobid, NULL), 0);
    cr_assert(cluster_wait_vgpu(c, vm, false, 15000), "%s (%s) survived scancel", vm, id);
    cr_assert(cluster_wait_idle(c, 15000));
    char *node = cluster_node_state(c);
    cr_assert_str_eq(node, "idle");
    free(node), free(vm);
    cluster_stop(&c);
}

Test(slurm, two_jobs_with_shares_30_and_70_on_one_gpu_get_them)
{
    cluster_t *c = start(1);
    char *worker = qt_build_path("tests/progs/demo_worker");
    /* one window for both, opening once both jobs have surely started */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char at[32];
    snprintf(at, sizeof at, "%lld",
             (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec + 6000000000ll);
    const char *a[] = {
        "srun", "--vgpu=memory=1GiB,share=30", worker, "--start-at", at, "--seconds", "3", NULL};
    const char *b[] = {
        "srun", "--vgpu=memory=1GiB,share=70", worker, "--start-at", at, "--seconds", "3", NULL};
    qt_proc_t *pa = cluster_spawn(c, a, NULL), *pb = cluster_spawn(c, b, NULL);
    cr_assert_eq(qt_proc_wait(pa, 60000), 0, "%s", qt_proc_stderr(pa));
    cr_assert_eq(qt_proc_wait(pb, 60000), 0, "%s", qt_proc_stderr(pb));
    const char *oa = qt_proc_stdout(pa), *ob = qt_proc_stdout(pb);
    char la[512], lb[512];
    cr_assert(qts_line(oa, "compute ", la, sizeof la), "%s", oa);
    cr_assert(qts_line(ob, "compute ", lb, sizeof lb), "%s", ob);
    cr_assert(strstr(la, "late=0") && strstr(lb, "late=0"), "a job started late:\n%s\n%s", la, lb);
    double pct_a = atof(strstr(la, "achieved_pct=") + 13);
    double pct_b = atof(strstr(lb, "achieved_pct=") + 13);
    /* the tolerance of the demo's compute-share check (test_demo.c): 8 points */
    cr_assert(pct_a >= 30 - 8.0 && pct_a <= 30 + 8.0, "share 30 achieved %.1f%%", pct_a);
    cr_assert(pct_b >= 70 - 8.0 && pct_b <= 70 + 8.0, "share 70 achieved %.1f%%", pct_b);
    qt_proc_destroy(&pa);
    qt_proc_destroy(&pb);
    free(worker);
    cluster_stop(&c);
}

/* Asserts that argv was refused before any job was made, saying why in one line. */
static void refused(cluster_t *c, const char *const argv[], const char *why)
{
    char *out = NULL, *err = NULL;
    int rc = cluster_run(c, argv, NULL, 30000, &out, &err);
    cr_assert_neq(rc, 0, "%s %s was accepted", argv[0], argv[1]);
    char *line = strstr(err, why);
    cr_assert_not_null(line, "%s %s: %s", argv[0], argv[1], err);
    int ours = 0;
    for (const char *p = err; (p = strstr(p, "--vgpu: ")); p++)
        ours++;
    cr_assert_eq(ours, 1, "the reason, once:\n%s", err);
    free(out), free(err);
}

Test(slurm, a_bad_vgpu_value_is_refused_at_submission_and_no_job_is_made)
{
    cluster_t *c = start(1);
    const char *srun[] = {"srun", "--vgpu=Q3", "true", NULL};
    refused(c, srun, "--vgpu: unknown profile 'Q3' (use Q1, Q2, Q4, Q8 or");
    const char *sbatch[] = {"sbatch", "--vgpu=memory=2GiB,share=30,limit=10", "--wrap", "true",
                            NULL};
    refused(c, sbatch, "--vgpu: limit 10% is below share 30%");
    const char *salloc[] = {"salloc", "--vgpu=memory=lots,share=5", "true", NULL};
    refused(c, salloc, "--vgpu: memory: size 'lots'");
    /* in the script's own #SBATCH lines too */
    char *dir = cluster_path(c, "scripts"), *script;
    cr_assert_geq(asprintf(&script, "%s/job.sh", dir), 0);
    FILE *f = fopen(script, "w");
    cr_assert_not_null(f);
    fputs("#!/bin/sh\n#SBATCH --vgpu=Q16\ntrue\n", f);
    fclose(f);
    const char *inline_opt[] = {"sbatch", script, NULL};
    refused(c, inline_opt, "--vgpu: unknown profile 'Q16'");

    char *out = NULL;
    cr_assert_eq(slurm(c, &out, NULL, "squeue", "-h", "-t", "all", NULL), 0);
    cr_assert_str_eq(out, "", "no job was submitted");
    free(out), free(script), free(dir);
    cluster_stop(&c);
}

Test(slurm, with_the_arbiter_down_jobs_fail_with_the_reason_the_node_stays_idle_and_gc_cleans_up)
{
    cluster_t *c = start(1);
    qt_arbiter_t *arb = cluster_arbiter(c);
    unsigned before = sbatch(c, "--vgpu=Q1", "sleep 300");
    char *vm_before = vm_of(before);
    cr_assert(cluster_wait_vgpu(c, vm_before, true, 30000), "%s", cluster_logs(c));

    qt_arbiter_kill(arb, SIGTERM);

    /* srun: the reason on the job's stderr */
    char *out = NULL, *err = NULL;
    int rc = slurm(c, &out, &err, "srun", "--vgpu=Q1", "echo", "ran", NULL);
    cr_assert_neq(rc, 0);
    cr_assert_null(strstr(out, "ran"), "the job ran without a vGPU");
    cr_assert(strstr(err, "got no vGPU (--vgpu=Q1): no arbiter at "), "%s", err);
    free(out), free(err);
    /* sbatch: the reason in the job's output, the job FAILED */
    char *dir = cluster_path(c, "out"), *o;
    cr_assert_geq(asprintf(&o, "%s/batch.out", dir), 0);
    rc = slurm(c, &out, &err, "sbatch", "--wait", "--vgpu=Q2", "-o", o, "--wrap", "echo ran", NULL);
    cr_assert_neq(rc, 0);
    unsigned failed = (unsigned)strtoul(strstr(out, "job ") + 4, NULL, 10);
    free(out), free(err);
    FILE *f = fopen(o, "r");
    cr_assert_not_null(f);
    char text[2048] = "";
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    cr_assert_null(strstr(text, "ran\n"), "%s", text);
    cr_assert(strstr(text, "got no vGPU (--vgpu=Q2): no arbiter at "), "%s", text);
    char *state = cluster_job_state(c, failed);
    cr_assert_str_eq(state, "FAILED");
    free(state);

    /* the first job ends while the arbiter is down: its epilog cannot destroy the vGPU */
    char jobid[16];
    snprintf(jobid, sizeof jobid, "%u", before);
    cr_assert_eq(slurm(c, NULL, NULL, "scancel", jobid, NULL), 0);
    cr_assert(cluster_wait_idle(c, 15000));
    char *node = cluster_node_state(c);
    cr_assert_str_eq(node, "idle", "the node was taken out of service\n%s", cluster_logs(c));
    free(node);

    /* back: the vGPU of the ended job is still there, another job starts */
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    cr_assert(cluster_vgpu(c, vm_before, NULL, NULL), "%s was not left behind?", vm_before);
    unsigned after = sbatch(c, "--vgpu=Q1", "sleep 300");
    char *vm_after = vm_of(after);
    cr_assert(cluster_wait_vgpu(c, vm_after, true, 30000), "%s", cluster_logs(c));

    /* gc with the live jobs: a vGPU made this minute is kept unless --min-age says not */
    char *ctl = qt_build_path("qgpuctl"), *cmd;
    cr_assert_geq(asprintf(&cmd, "squeue -h -o %%A | %s --socket-dir %s gc --vm-prefix slurm- -",
                           ctl, qt_arbiter_socket_dir(arb)),
                  0);
    const char *gc_young[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(cluster_run(c, gc_young, NULL, 30000, &out, &err), 0, "%s", err);
    cr_assert_str_eq(out, "");
    cr_assert(strstr(err, "kept") && strstr(err, vm_before), "%s", err);
    free(out), free(err), free(cmd);
    cr_assert_geq(asprintf(&cmd,
                           "squeue -h -o %%A | %s --socket-dir %s gc --vm-prefix slurm- "
                           "--min-age 0 -",
                           ctl, qt_arbiter_socket_dir(arb)),
                  0);
    const char *gc[] = {"/bin/sh", "-c", cmd, NULL};
    cr_assert_eq(cluster_run(c, gc, NULL, 30000, &out, &err), 0, "%s", err);
    cr_assert(strstr(out, "destroyed ") && strstr(out, vm_before), "%s", out);
    cr_assert_null(strstr(out, vm_after), "a live job's vGPU was destroyed:\n%s", out);
    free(out), free(err);
    cr_assert_not(cluster_vgpu(c, vm_before, NULL, NULL), "%s leaked", vm_before);
    cr_assert(cluster_vgpu(c, vm_after, NULL, NULL), "%s (live) is gone", vm_after);

    snprintf(jobid, sizeof jobid, "%u", after);
    cr_assert_eq(slurm(c, NULL, NULL, "scancel", jobid, NULL), 0);
    cr_assert(cluster_wait_vgpu(c, vm_after, false, 15000));
    cr_assert_eq(qt_ctl(arb, &out, NULL, "list", NULL), 0);
    cr_assert_eq(qts_count_lines(out, "vg-"), 0, "leaked:\n%s", out);
    free(out), free(cmd), free(ctl), free(vm_before), free(vm_after), free(o), free(dir);
    cluster_stop(&c);
}

Test(slurm, a_job_with_gres_gpu_gets_its_vgpu_on_the_gpu_slurm_gave_it)
{
    cluster_t *c = start(2);
    /* a job without a vGPU holds Slurm's GPU 0, so the next one is given GPU 1 */
    unsigned holder = sbatch(c, "--gres=gpu:1", "sleep 300");
    char *state = NULL;
    for (int t = 0; t < 30000; t += 100) {
        free(state);
        state = cluster_job_state(c, holder);
        if (state && strcmp(state, "RUNNING") == 0)
            break;
        qt_sleep_ms(100);
    }
    cr_assert_str_eq(state, "RUNNING");
    free(state);
    /* the task asks the arbiter where its vGPU is, while it exists */
    char *ctl = qt_build_path("qgpuctl"), *script;
    cr_assert_geq(asprintf(&script,
                           "printenv CUDA_VISIBLE_DEVICES; %s --socket-dir %s info $QVGPU_VGPU | "
                           "grep '^gpu:'",
                           ctl, qt_arbiter_socket_dir(cluster_arbiter(c))),
                  0);
    char *out = NULL, *err = NULL, *l[4];
    int rc = slurm(c, &out, &err, "srun", "--gres=gpu:1", "--vgpu=Q2", "sh", "-c", script, NULL);
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_eq(lines(out, l, 4), 2, "%s", out);
    char uuids[2][64], where[128];
    cr_assert_eq(qts_gpu_uuids(uuids, 2), 2);
    cr_assert_str_eq(l[0], uuids[1], "CUDA_VISIBLE_DEVICES: GPU 1's");
    snprintf(where, sizeof where, "gpu:         1 (%s)", uuids[1]);
    cr_assert_str_eq(l[1], where, "the vGPU is on GPU 1");
    free(script), free(ctl);
    free(out), free(err);
    cluster_stop(&c);
}

Test(slurm, a_hung_arbiter_fails_the_job_within_the_timeout_and_the_node_stays_idle)
{
    cluster_t *c = start_with(1, "timeout=2");
    qt_arbiter_t *arb = cluster_arbiter(c);
    qt_proc_t *ap = qt_arbiter_proc(arb);
    qt_proc_kill(ap, SIGSTOP);
    char *out = NULL, *err = NULL;
    uint64_t t0 = qt_now_ns();
    int rc = slurm(c, &out, &err, "srun", "--vgpu=Q1", "echo", "ran", NULL);
    double s = (double)(qt_now_ns() - t0) / 1e9;
    cr_assert_neq(rc, 0);
    cr_assert_null(strstr(out, "ran"), "the job ran without a vGPU");
    /* qgpuctl's own words: each request may take half the plugin's timeout */
    cr_assert(strstr(err, "got no vGPU (--vgpu=Q1): cannot reach the arbiter at "), "%s", err);
    /* create (2 s at most) before the job, destroy (2 s at most) after it */
    cr_assert_lt(s, 15.0, "took %.1f s", s);
    free(out), free(err);
    cr_assert(cluster_wait_idle(c, 15000));
    char *node = cluster_node_state(c);
    cr_assert_str_eq(node, "idle", "%s", cluster_logs(c));
    free(node);

    /* the create may still be carried out once the arbiter runs again: gc removes it */
    qt_proc_kill(ap, SIGCONT);
    cr_assert_eq(qt_ctl(arb, &out, &err, "list", NULL), 0, "%s", err);
    free(out), free(err);
    cr_assert_eq(
        qt_ctl(arb, &out, &err, "gc", "--vm-prefix", "slurm-", "--min-age", "0", "-", NULL), 0,
        "%s", err);
    free(out), free(err);
    cr_assert_eq(qt_ctl(arb, &out, NULL, "list", NULL), 0);
    cr_assert_eq(qts_count_lines(out, "vg-"), 0, "leaked:\n%s", out);
    free(out);
    cluster_stop(&c);
}
