/* test_arbiter_audit.c - what the host sees through NVML: the audit's rules on made-up
 * rounds (arbiter/audit.c), then a real qarbiter on the simulated GPU finding processes
 * that escape the shim, charging the driver's memory of each process to its vGPU's
 * quota, reporting in qgpuctl and killing when configured. */
#include "arbiter/audit.h"
#include "arbiter/tenant.h"
#include "include/nvml_subset.h"
#include "proto/units.h"
#include "tests/ctl_support.h"
#include "tests/handler_support.h"
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB QP_MIB
#define SEC 1000000000ull

/* ---- the rules, on made-up rounds ------------------------------------------------- */

/* A made-up host: GPU 0 and 1 of 8 GiB, the audit's callbacks answered from tables. */
struct world {
    qa_config_t cfg;
    qa_log_t log;
    qa_host_t *host;
    qa_audit_t *audit;
    qa_gpu_sample_t samples[2];
    qa_session_t sessions[8]; /* linked into their vGPU's list by join() */
    int nsessions;
    struct {
        unsigned pid;
        int rc;
        qa_proc_info_t info;
    } procs[8]; /* what inspect answers; unknown pids: -ENOENT */
    int nprocs;
    unsigned killed[8]; /* pids kill was called for */
    int nkilled;
    int kill_rc; /* what kill answers */
};

static int w_inspect(void *arg, unsigned pid, qa_proc_info_t *out)
{
    struct world *w = arg;
    for (int i = 0; i < w->nprocs; i++) {
        if (w->procs[i].pid == pid) {
            *out = w->procs[i].info;
            return w->procs[i].rc;
        }
    }
    memset(out, 0, sizeof *out);
    return -ENOENT;
}

static int w_kill(void *arg, unsigned pid, uint64_t start)
{
    struct world *w = arg;
    cr_assert_neq(start, 0, "a kill always names the process's start time");
    w->killed[w->nkilled++] = pid;
    return w->kill_rc;
}

/* tenant.c's own charge. */
static void w_charge(void *arg, qa_session_t *s, uint64_t bytes)
{
    (void)arg;
    qa_tenants_charge(s, bytes);
}

static const qa_audit_ops_t w_ops = {w_inspect, w_kill, w_charge};

static struct world *world_new(const char *config_lines)
{
    struct world *w = calloc(1, sizeof *w);
    qa_config_defaults(&w->cfg);
    w->cfg.audit_grace_ms = 1000;
    if (config_lines) {
        char *dir = qt_tmpdir(), path[512], err[QP_ERR_LEN];
        snprintf(path, sizeof path, "%s/qarbiter.conf", dir);
        FILE *f = fopen(path, "w");
        fputs(config_lines, f);
        fclose(f);
        cr_assert_eq(qa_config_load(&w->cfg, path, err), 0, "%s", err);
        free(dir);
    }
    w->log = (qa_log_t){QA_DEBUG, stderr};
    w->host = qt_host(2, &w->cfg);
    w->audit = qa_audit_new(&w->cfg, &w->log, &w_ops, w);
    cr_assert(w->host && w->audit);
    return w;
}

static void world_free(struct world *w)
{
    qa_audit_destroy(&w->audit);
    cr_assert_null(w->audit);
    qa_host_destroy(&w->host);
    free(w);
}

static qa_vgpu_t *vgpu(struct world *w, const char *profile, int gpu)
{
    qa_spec_t s = {.vm = "vm", .profile = profile, .gpu = gpu};
    qa_vgpu_t *v;
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_host_create(w->host, &s, 0, &v, err), 0, "%s", err);
    return v;
}

/* A session of v whose process is host pid, holding used of reserved. */
static qa_session_t *join(struct world *w, qa_vgpu_t *v, unsigned pid, uint64_t used,
                          uint64_t reserved)
{
    qa_session_t *p = &w->sessions[w->nsessions++];
    p->vgpu = v;
    p->host_pid = (pid_t)pid;
    p->id = (uint64_t)w->nsessions;
    p->used = used;
    p->reserved = reserved;
    p->next_in_vgpu = v->sessions;
    v->sessions = p;
    return p;
}

/* What inspect says about pid: its name, and the credentials in its environment. */
static void proc(struct world *w, unsigned pid, int rc, const char *name, const char *vgpu,
                 const char *secret)
{
    w->procs[w->nprocs].pid = pid;
    w->procs[w->nprocs].rc = rc;
    qa_proc_info_t *i = &w->procs[w->nprocs++].info;
    snprintf(i->name, sizeof i->name, "%s", name);
    i->start = 1000 + pid;
    snprintf(i->vgpu, sizeof i->vgpu, "%s", vgpu ? vgpu : "");
    snprintf(i->secret, sizeof i->secret, "%s", secret ? secret : "");
}

/* Starts GPU gpu's next sample: measured, no process yet. */
static void sample(struct world *w, unsigned gpu)
{
    qa_gpu_sample_t *s = &w->samples[gpu];
    s->ok = s->mem_ok = true;
    s->nmem = 0;
}

static void listed(struct world *w, unsigned gpu, unsigned pid, uint64_t bytes)
{
    qa_gpu_sample_t *s = &w->samples[gpu];
    s->mem[s->nmem++] = (qa_proc_mem_t){.pid = pid, .known = true, .bytes = bytes};
}

static void round_at(struct world *w, uint64_t now)
{
    qa_audit_round(w->audit, w->host, w->samples, 2, now);
}

static const qp_finding_t *finding(struct world *w, const char *kind, size_t *count)
{
    size_t n;
    const qp_finding_t *f = qa_audit_findings(w->audit, &n);
    const qp_finding_t *first = NULL;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(f[i].kind, kind) == 0) {
            first = first ? first : &f[i];
            (*count)++;
        }
    }
    return first;
}

Test(qa_audit, a_tenants_context_memory_is_charged_to_its_vgpu_and_shown_as_real_use)
{
    struct world *w = world_new(NULL);
    qa_vgpu_t *v = vgpu(w, "Q2", 0);
    qa_session_t *p = join(w, v, 100, 0, 0);
    sample(w, 0);
    sample(w, 1);
    listed(w, 0, 100, 256 * MiB); /* its context, nothing allocated yet */
    round_at(w, 1 * SEC);
    cr_assert_eq(p->seen.real, 256 * MiB);
    cr_assert_eq(p->overhead, 256 * MiB, "charged beyond its allocations");
    cr_assert_eq(v->mem_overhead, 256 * MiB);
    cr_assert_eq(v->mem_real, 256 * MiB);
    /* It allocates 512 MiB and says so: the charge stays what the driver holds. */
    p->used = p->reserved = 512 * MiB;
    sample(w, 0);
    listed(w, 0, 100, 768 * MiB);
    round_at(w, 2 * SEC);
    cr_assert_eq(v->mem_real, 768 * MiB);
    cr_assert_eq(p->overhead, 256 * MiB);
    size_t n;
    cr_assert_null(finding(w, "unmanaged", &n), "a tenant where it belongs");
    cr_assert_null(finding(w, "over_quota", &n));
    world_free(w);
}

Test(qa_audit, a_report_lagging_behind_allocations_does_not_inflate_the_charge)
{
    struct world *w = world_new(NULL);
    qa_vgpu_t *v = vgpu(w, "Q2", 0);
    qa_session_t *p = join(w, v, 100, 0, 512 * MiB);
    sample(w, 0);
    sample(w, 1);
    listed(w, 0, 100, 256 * MiB);
    round_at(w, 1 * SEC);
    /* Two rounds in which it allocated within its reservation and has not said so yet. */
    sample(w, 0);
    listed(w, 0, 100, 256 * MiB + 64 * MiB);
    round_at(w, 2 * SEC);
    w->samples[0].mem[0].bytes = 256 * MiB + 128 * MiB;
    round_at(w, 3 * SEC);
    cr_assert_eq(p->overhead, 256 * MiB, "the least of the last gaps");
    /* Its report catches up. */
    p->used = 128 * MiB;
    round_at(w, 4 * SEC);
    cr_assert_eq(p->overhead, 256 * MiB);
    /* A second context, lasting: charged after three rounds. */
    w->samples[0].mem[0].bytes = 512 * MiB + 128 * MiB;
    round_at(w, 5 * SEC);
    round_at(w, 6 * SEC);
    cr_assert_eq(p->overhead, 256 * MiB, "not yet: one report could have lagged");
    round_at(w, 7 * SEC);
    cr_assert_eq(p->overhead, 512 * MiB);
    cr_assert_eq(v->mem_overhead, 512 * MiB);
    /* Its contexts gone (NVML no longer lists it): nothing charged at once. */
    sample(w, 0);
    round_at(w, 8 * SEC);
    cr_assert_eq(p->overhead, 0);
    cr_assert_eq(v->mem_overhead, 0);
    world_free(w);
}

Test(qa_audit, charge_allocated_keeps_the_driver_s_memory_out_of_the_quota)
{
    struct world *w = world_new("[audit]\ncharge = allocated\n");
    qa_vgpu_t *v = vgpu(w, "Q2", 0);
    qa_session_t *p = join(w, v, 100, 0, 0);
    sample(w, 0);
    sample(w, 1);
    listed(w, 0, 100, 256 * MiB);
    round_at(w, 1 * SEC);
    cr_assert_eq(p->overhead, 0);
    cr_assert_eq(v->mem_real, 256 * MiB, "still shown");
    world_free(w);
}

Test(qa_audit, a_process_with_a_vgpus_credentials_but_no_shim_is_charged_then_reported)
{
    struct world *w = world_new(NULL);
    qa_vgpu_t *v = vgpu(w, "Q2", 0);
    proc(w, 300, 0, "prog", v->id, v->secret);
    sample(w, 0);
    sample(w, 1);
    listed(w, 0, 300, 8192 * MiB);
    round_at(w, 10 * SEC);
    cr_assert_eq(v->mem_unmanaged, 8192 * MiB, "charged at once");
    cr_assert_eq(v->mem_real, 8192 * MiB);
    cr_assert_eq(v->procs_unmanaged, 1);
    cr_assert_eq(qa_host_gpu(w->host, 0)->memory_unmanaged, 8192 * MiB);
    size_t n;
    cr_assert_null(finding(w, "unmanaged", &n), "not reported before the grace");
    round_at(w, 10 * SEC + 999000000ull);
    cr_assert_null(finding(w, "unmanaged", &n));
    round_at(w, 11 * SEC);
    const qp_finding_t *f = finding(w, "unmanaged", &n);
    cr_assert_not_null(f);
    cr_assert_eq(f->pid, 300);
    cr_assert_str_eq(f->vgpu, v->id);
    cr_assert_str_eq(f->name, "prog");
    cr_assert_eq(f->memory, 8192 * MiB);
    cr_assert_eq(f->quota, 2048 * MiB);
    cr_assert_str_eq(f->action, "reported");
    cr_assert(strstr(f->detail, "without the shim"), "%s", f->detail);
    cr_assert_not_null(finding(w, "over_quota", &n), "and its vGPU is over its quota");
    cr_assert_eq(w->nkilled, 0, "report is the default");
    /* Gone: no finding, nothing charged. */
    sample(w, 0);
    round_at(w, 12 * SEC);
    cr_assert_null(finding(w, "unmanaged", &n));
    cr_assert_null(finding(w, "over_quota", &n));
    cr_assert_eq(v->mem_unmanaged, 0);
    world_free(w);
}

Test(qa_audit, a_wrong_secret_pins_nothing_on_a_vgpu)
{
    struct world *w = world_new(NULL);
    qa_vgpu_t *v = vgpu(w, "Q2", 0);
    proc(w, 300, 0, "prog", v->id, "00000000000000000000000000000000");
    sample(w, 0);
    sample(w, 1);
    listed(w, 0, 300, 1024 * MiB);
    round_at(w, 1 * SEC);
    round_at(w, 3 * SEC);
    cr_assert_eq(v->mem_unmanaged, 0, "not charged to a vGPU whose secret it lacks");
    size_t n;
    const qp_finding_t *f = finding(w, "unmanaged", &n);
    cr_assert_not_null(f);
    cr_assert_str_eq(f->vgpu, "");
    cr_assert(strstr(f->detail, "no vGPU's tenant"), "%s", f->detail);
    world_free(w);
}

Test(qa_audit, unmanaged_processes_are_killed_once_when_configured_and_hidden_ones_never)
{
    struct world *w = world_new("[audit]\nunmanaged = kill\n");
    vgpu(w, "Q2", 0);
    proc(w, 300, 0, "miner", NULL, NULL);
    proc(w, 301, -EACCES, "secretive", NULL, NULL);
    sample(w, 0);
    sample(w, 1);
    listed(w, 0, 300, 100 * MiB);
    listed(w, 1, 301, 100 * MiB);
    listed(w, 1, 302, 100 * MiB); /* not visible from here */
    round_at(w, 1 * SEC);
    cr_assert_eq(w->nkilled, 0, "not before the grace");
    round_at(w, 2 * SEC);
    cr_assert_eq(w->nkilled, 2);
    cr_assert_eq(w->killed[0], 300);
    cr_assert_eq(w->killed[1], 301);
    cr_assert_eq(qa_audit_kills(w->audit), 2);
    size_t n;
    finding(w, "unmanaged", &n);
    cr_assert_eq(n, 3);
    const qp_finding_t *all = qa_audit_findings(w->audit, &n);
    for (size_t i = 0; i < n; i++) {
        if (all[i].pid == 302) {
            cr_assert_str_eq(all[i].action, "kill failed");
            cr_assert(strstr(all[i].detail, "pid namespace"), "%s", all[i].detail);
        } else {
            cr_assert_str_eq(all[i].action, "killed");
        }
    }
    round_at(w, 3 * SEC);
    cr_assert_eq(w->nkilled, 2, "once: NVML may list a dying process a little longer");
    world_free(w);
}

Test(qa_audit, ignore_reports_nothing_but_still_charges_the_escape)
{
    struct world *w = world_new("[audit]\nunmanaged = ignore\n");
    qa_vgpu_t *v = vgpu(w, "Q8", 0);
    proc(w, 300, 0, "prog", v->id, v->secret);
    sample(w, 0);
    sample(w, 1);
    listed(w, 0, 300, 100 * MiB);
    round_at(w, 1 * SEC);
    round_at(w, 5 * SEC);
    size_t n;
    cr_assert_null(finding(w, "unmanaged", &n));
    cr_assert_eq(v->mem_unmanaged, 100 * MiB);
    world_free(w);
}

Test(qa_audit, a_tenant_on_a_gpu_other_than_its_vgpus_is_unmanaged_there)
{
    struct world *w = world_new(NULL);
    qa_vgpu_t *v = vgpu(w, "Q2", 0);
    proc(w, 100, 0, "prog", NULL, NULL);
    qa_session_t *p = join(w, v, 100, 0, 0);
    sample(w, 0);
    sample(w, 1);
    listed(w, 1, 100, 300 * MiB);
    round_at(w, 1 * SEC);
    round_at(w, 2 * SEC);
    cr_assert_eq(p->seen.real, 0, "nothing on its own GPU");
    cr_assert_eq(v->mem_unmanaged, 300 * MiB, "charged to its vGPU all the same");
    size_t n;
    const qp_finding_t *f = finding(w, "unmanaged", &n);
    cr_assert_not_null(f);
    cr_assert_eq(f->gpu, 1);
    cr_assert_str_eq(f->vgpu, v->id);
    cr_assert(strstr(f->detail, "is on GPU 0"), "%s", f->detail);
    world_free(w);
}

Test(qa_audit, a_vgpu_over_its_quota_is_reported_and_its_biggest_overuser_killed)
{
    struct world *w = world_new("[audit]\nover_quota = kill\n");
    qa_vgpu_t *v = vgpu(w, "Q1", 0);
    proc(w, 100, 0, "fair", NULL, NULL);
    proc(w, 101, 0, "greedy", NULL, NULL);
    join(w, v, 100, 200 * MiB, 256 * MiB);
    join(w, v, 101, 100 * MiB, 128 * MiB);
    sample(w, 0);
    sample(w, 1);
    listed(w, 0, 100, 456 * MiB);             /* its allocations and its context */
    listed(w, 0, 101, 100 * MiB + 900 * MiB); /* allocations the shim never saw */
    round_at(w, 1 * SEC);
    size_t n;
    cr_assert_null(finding(w, "over_quota", &n), "not before the grace");
    cr_assert_eq(w->nkilled, 0);
    round_at(w, 2 * SEC);
    const qp_finding_t *f = finding(w, "over_quota", &n);
    cr_assert_not_null(f);
    cr_assert_str_eq(f->vgpu, v->id);
    cr_assert_eq(f->memory, 1456 * MiB);
    cr_assert_eq(f->quota, 1024 * MiB);
    cr_assert_eq(w->nkilled, 1);
    cr_assert_eq(w->killed[0], 101, "the one most beyond its reservation");
    /* It is gone: back within the quota. */
    sample(w, 0);
    listed(w, 0, 100, 456 * MiB);
    round_at(w, 3 * SEC);
    cr_assert_null(finding(w, "over_quota", &n));
    cr_assert_eq(w->nkilled, 1);
    world_free(w);
}

Test(qa_audit, a_gpu_whose_process_list_failed_keeps_its_figures)
{
    struct world *w = world_new(NULL);
    qa_vgpu_t *v = vgpu(w, "Q2", 0);
    qa_session_t *p = join(w, v, 100, 0, 0);
    sample(w, 0);
    sample(w, 1);
    listed(w, 0, 100, 256 * MiB);
    round_at(w, 1 * SEC);
    w->samples[0].mem_ok = false;
    w->samples[0].nmem = 0;
    round_at(w, 2 * SEC);
    cr_assert_eq(p->overhead, 256 * MiB, "not dropped for a failed query");
    cr_assert_eq(v->mem_real, 256 * MiB);
    world_free(w);
}

/* ---- a real qarbiter on the simulated GPU ---------------------------------------- */

#define GIB (1024ull * MiB)

/* `qgpuctl run ID -- env -u LD_PRELOAD shim_work CMDS...`: a workload of vGPU id that
 * drops the shim, as issue 8 item 5 found one. Extra environment in env (may be NULL). */
static qt_proc_t *run_without_shim(const qt_arbiter_t *arb, const char *id, const char *const env[],
                                   const char *const cmds[])
{
    char *ctl = qt_build_path("qgpuctl"), *work = qt_build_path("tests/progs/shim_work");
    const char *argv[32] = {
        ctl, "--socket-dir", qt_arbiter_socket_dir(arb), "run", id, "--", "env", "-u", "LD_PRELOAD",
        work};
    size_t n = 10;
    for (size_t i = 0; cmds[i] && n < 31; i++)
        argv[n++] = cmds[i];
    argv[n] = NULL;
    qt_proc_t *p = qt_spawn(argv, env);
    cr_assert_not_null(p);
    free(ctl);
    free(work);
    return p;
}

/* The stats' first finding of kind about vGPU vgpu ("" for none), copied into out. */
static bool find_finding(qv_client_t *c, const char *kind, const char *vgpu, qv_finding_t *out,
                         uint64_t *kills)
{
    qv_stats_t *s;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_stats(c, &s, err), 0, "%s", err);
    bool found = false;
    for (size_t i = 0; i < s->nfindings && !found; i++) {
        if (strcmp(s->findings[i].kind, kind) == 0 && strcmp(s->findings[i].vgpu, vgpu) == 0) {
            *out = s->findings[i];
            found = true;
        }
    }
    if (kills)
        *kills = s->kills;
    qv_stats_free(&s);
    return found;
}

/* Polls the stats every 100 ms for up to ms for such a finding; returns ns it took, or
 * 0 when none came. */
static uint64_t wait_finding(qv_client_t *c, const char *kind, const char *vgpu, qv_finding_t *out,
                             int ms)
{
    uint64_t t0 = qt_now_ns();
    while (qt_now_ns() - t0 < (uint64_t)ms * 1000000u) {
        if (find_finding(c, kind, vgpu, out, NULL))
            return qt_now_ns() - t0;
        qt_sleep_ms(100);
    }
    return 0;
}

Test(qa_audit, a_workload_that_drops_the_shim_is_reported_within_seconds_and_charged_to_its_vgpu,
     .timeout = 60)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL); /* the default [audit]: report, 2 s grace */
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "vm-1", "Q2", id, secret);
    static const char *const cmds[] = {"init", "alloc:cuMemAlloc_v2:direct:3G", "ready", "hold",
                                       NULL};
    qt_proc_t *escapee = run_without_shim(arb, id, NULL, cmds);
    cr_assert(qts_wait_line(escapee, "ready", 10000), "%s", qt_proc_stderr(escapee));
    cr_assert_eq(qts_field(qt_proc_stdout(escapee), "alloc cuMemAlloc_v2 direct ", 0), 0,
                 "without the shim nothing stops it: %s", qt_proc_stdout(escapee));
    qv_finding_t f;
    uint64_t took = wait_finding(c, "unmanaged", id, &f, 10000);
    cr_assert_gt(took, 0, "never reported");
    cr_assert_lt(took, 5 * SEC, "reported after %.1f s", (double)took / SEC);
    cr_assert_eq(f.pid, (unsigned)qt_proc_pid(escapee));
    cr_assert_str_eq(f.name, "shim_work");
    cr_assert_eq(f.memory, 3 * GIB + QTS_CTX, "its allocation and its context");
    cr_assert_eq(f.quota, 2 * GIB);
    cr_assert_str_eq(f.action, "reported");
    cr_assert(find_finding(c, "over_quota", id, &f, NULL), "its vGPU is over its quota");
    cr_assert_eq(f.memory, 3 * GIB + QTS_CTX);
    /* info shows what was allocated through the shim (nothing) and what is really held. */
    qv_vgpu_t v = ctl_info(c, id);
    cr_assert_eq(v.memory_used, 0);
    cr_assert_eq(v.memory_real, 3 * GIB + QTS_CTX);
    cr_assert_eq(v.memory_unmanaged, 3 * GIB + QTS_CTX);
    cr_assert_eq(v.unmanaged_procs, 1);
    /* Its memory counts against the quota: the vGPU's well-behaved processes get none. */
    qts_env_t e;
    qts_vgpu_t qv;
    snprintf(qv.id, sizeof qv.id, "%s", id);
    snprintf(qv.secret, sizeof qv.secret, "%s", secret);
    snprintf(qv.gpu_uuid, sizeof qv.gpu_uuid, "%s", v.gpu_uuid);
    qts_env_of(&e, arb, &qv);
    char *out = NULL;
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "alloc:cuMemAlloc_v2:direct:64M", NULL), 0);
    cr_assert_eq(qts_field(out, "alloc cuMemAlloc_v2 direct ", 0), 2, "refused: %s", out);
    free(out);
    /* The administrator sees it in a line, and so does the log. */
    char *stats = NULL;
    cr_assert_eq(qt_ctl(arb, &stats, NULL, "stats", NULL), 0);
    cr_assert(strstr(stats, "unmanaged"), "%s", stats);
    cr_assert(strstr(stats, "without the shim"), "%s", stats);
    cr_assert(strstr(stats, "over_quota"), "%s", stats);
    free(stats);
    char *info = NULL;
    cr_assert_eq(qt_ctl(arb, &info, NULL, "info", id, NULL), 0);
    cr_assert(strstr(info, "memory_used: 0 MiB (0 bytes) allocated by its processes"), "%s", info);
    cr_assert(strstr(info, "unmanaged:   1 process with its credentials but no shim"), "%s", info);
    free(info);
    cr_assert(strstr(qt_proc_stderr(qt_arbiter_proc(arb)), "without the shim"), "%s",
              qt_proc_stderr(qt_arbiter_proc(arb)));
    /* Gone: the finding goes, and the quota is free again. */
    qt_proc_kill(escapee, SIGKILL);
    qt_proc_wait(escapee, 5000);
    uint64_t t0 = qt_now_ns();
    while (find_finding(c, "unmanaged", id, &f, NULL) && qt_now_ns() - t0 < 5 * SEC)
        qt_sleep_ms(100);
    cr_assert_not(find_finding(c, "unmanaged", id, &f, NULL));
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "alloc:cuMemAlloc_v2:direct:64M", NULL), 0);
    cr_assert_eq(qts_field(out, "alloc cuMemAlloc_v2 direct ", 0), 0, "%s", out);
    free(out);
    qt_proc_destroy(&escapee);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qa_audit, a_workload_that_drops_the_shim_is_killed_when_configured, .timeout = 60)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, "[audit]\nunmanaged = kill\ngrace_ms = 500\n");
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "vm-1", "Q2", id, secret);
    static const char *const cmds[] = {"init", "alloc:cuMemAlloc_v2:direct:3G", "ready", "hold",
                                       NULL};
    qt_proc_t *escapee = run_without_shim(arb, id, NULL, cmds);
    cr_assert(qts_wait_line(escapee, "ready", 10000), "%s", qt_proc_stderr(escapee));
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(qt_proc_wait(escapee, 10000), 128 + SIGKILL);
    cr_assert_lt(qt_now_ns() - t0, 5 * SEC);
    qv_finding_t f;
    uint64_t kills = 0;
    find_finding(c, "unmanaged", id, &f, &kills);
    cr_assert_eq(kills, 1);
    const char *log = qt_proc_stderr(qt_arbiter_proc(arb));
    cr_assert(strstr(log, "killed pid"), "%s", log);
    qt_proc_destroy(&escapee);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qa_audit, a_gpu_process_of_no_vgpu_is_reported, .timeout = 60)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, "[audit]\ngrace_ms = 500\n");
    qv_client_t *c = ctl_client(arb);
    qts_env_t e;
    qts_env_plain(&e);
    qt_proc_t *p = qts_start(&e, "init", "alloc:cuMemAlloc_v2:direct:100M", "ready", "hold", NULL);
    cr_assert(qts_wait_line(p, "ready", 10000));
    qv_finding_t f;
    cr_assert_gt(wait_finding(c, "unmanaged", "", &f, 10000), 0, "never reported");
    cr_assert_eq(f.pid, (unsigned)qt_proc_pid(p));
    cr_assert_eq(f.gpu, 0);
    cr_assert_eq(f.memory, 100 * MiB + QTS_CTX);
    cr_assert(strstr(f.detail, "is no vGPU's tenant"), "%s", f.detail);
    qv_gpu_list_t *l;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_gpus(c, &l, err), 0, "%s", err);
    cr_assert_eq(l->gpus[0].memory_unmanaged_mb, 100 + QTS_CTX / MiB);
    cr_assert_eq(l->gpus[0].unmanaged_procs, 1);
    qv_gpu_list_free(&l);
    char *json = NULL;
    cr_assert_eq(qt_ctl(arb, &json, NULL, "--json", "stats", NULL), 0);
    cr_assert(strstr(json, "\"findings\""), "%s", json);
    cr_assert(strstr(json, "\"kind\": \"unmanaged\""), "%s", json);
    free(json);
    qt_proc_destroy(&p);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qa_audit, a_tenants_context_is_real_use_and_the_quota_holds_including_it, .timeout = 60)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "vm-1", "--profile", "Q1", NULL);
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    /* It takes all it can in 32 MiB pieces: what the quota leaves beside its context. */
    qt_proc_t *p = qts_start(&e, "init", "grab:32M", "info", "ready", "hold", NULL);
    cr_assert(qts_wait_line(p, "ready", 10000), "%s", qt_proc_stderr(p));
    const char *o = qt_proc_stdout(p);
    cr_assert_eq(qts_field(o, "grab ", 0), (long long)((GIB - QTS_CTX) / (32 * MiB)), "%s", o);
    cr_assert_eq(qts_field(o, "info ", 1), 0, "nothing free inside: %s", o);
    /* NVML, as the host sees it: the whole quota, not a byte more. */
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    nvmlDevice_t d;
    cr_assert_eq(nvmlDeviceGetHandleByIndex_v2(0, &d), NVML_SUCCESS);
    nvmlProcessInfo_t procs[8];
    unsigned n = 8;
    cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(d, &n, procs), NVML_SUCCESS);
    cr_assert_eq(n, 1);
    cr_assert_eq(procs[0].pid, (unsigned)qt_proc_pid(p));
    cr_assert_eq(procs[0].usedGpuMemory, GIB, "its allocations and its context fill the quota");
    nvmlShutdown();
    /* The arbiter shows both figures. */
    qv_client_t *c = ctl_client(arb);
    qv_vgpu_t info = ctl_info(c, v.id);
    for (int i = 0; i < 40 && info.memory_real != GIB; i++) { /* the next NVML round */
        qt_sleep_ms(100);
        info = ctl_info(c, v.id);
    }
    cr_assert_eq(info.memory_used, GIB - QTS_CTX, "allocated");
    cr_assert_eq(info.memory_real, GIB, "really held");
    qv_finding_t f;
    cr_assert_not(find_finding(c, "over_quota", v.id, &f, NULL), "at its quota, not over it");
    qt_proc_destroy(&p);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qa_audit, a_tenant_holding_more_than_its_quota_on_the_device_is_killed_when_configured,
     .timeout = 60)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, "[audit]\nover_quota = kill\ngrace_ms = 500\n");
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "vm-1", "--profile", "Q1", NULL);
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    /* Its context alone takes 1.5 GiB of a 1 GiB vGPU: the shim sees no allocation. */
    qts_env_add(&e, "QSIM_CONTEXT_MEMORY=1536MiB");
    qt_proc_t *p = qts_start(&e, "init", "ready", "hold", NULL);
    cr_assert(qts_wait_line(p, "ready", 10000), "%s", qt_proc_stderr(p));
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(qt_proc_wait(p, 10000), 128 + SIGKILL, "%s", qt_proc_stdout(p));
    cr_assert_lt(qt_now_ns() - t0, 5 * SEC);
    const char *log = qt_proc_stderr(qt_arbiter_proc(arb));
    cr_assert(strstr(log, "over its 1024 MiB quota"), "%s", log);
    cr_assert(strstr(log, "killed pid"), "%s", log);
    qt_proc_destroy(&p);
    qt_arbiter_destroy(&arb);
}

Test(qa_audit, a_tenant_in_a_pid_namespace_of_its_own_is_known_by_its_host_pid, .timeout = 60)
{
    /* As in a container: the shim says hello with pid 1, the connection shows the arbiter
     * its host pid (SO_PEERCRED), and NVML lists it by that pid. */
    qt_arbiter_t *arb = ctl_arbiter(NULL, "[audit]\ngrace_ms = 500\n");
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "vm-1", "--profile", "Q1", NULL);
    qts_env_t e;
    qts_env_of(&e, arb, &v);
    char *work = qt_build_path("tests/progs/shim_work");
    const char *argv[] = {"unshare",
                          "--pid",
                          "--fork",
                          "--kill-child",
                          work,
                          "init",
                          "alloc:cuMemAlloc_v2:direct:100M",
                          "ready",
                          "hold",
                          NULL};
    qt_proc_t *p = qt_spawn(argv, e.v);
    cr_assert_not_null(p);
    cr_assert(qts_wait_line(p, "ready", 10000), "%s", qt_proc_stderr(p));
    cr_assert_eq(qts_field(qt_proc_stdout(p), "alloc cuMemAlloc_v2 direct ", 0), 0);
    qv_client_t *c = ctl_client(arb);
    qv_vgpu_t info = ctl_info(c, v.id);
    for (int i = 0; i < 40 && info.memory_real != 100 * MiB + QTS_CTX; i++) {
        qt_sleep_ms(100);
        info = ctl_info(c, v.id);
    }
    cr_assert_eq(info.memory_real, 100 * MiB + QTS_CTX, "measured as its tenant");
    cr_assert_eq(info.unmanaged_procs, 0);
    qt_sleep_ms(1000); /* past the grace: still nothing to report */
    qv_finding_t f;
    cr_assert_not(find_finding(c, "unmanaged", "", &f, NULL), "%s", f.detail);
    cr_assert_not(find_finding(c, "unmanaged", v.id, &f, NULL), "%s", f.detail);
    free(work);
    qt_proc_destroy(&p);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}
