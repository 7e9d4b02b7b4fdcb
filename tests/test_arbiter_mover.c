/* test_arbiter_mover.c - moving a vGPU and its running processes to another GPU, on
 * the simulated driver with a real qarbiter and the shim in every workload: a workload
 * that never stops launching keeps its data, quota and share and sees the new GPU; an
 * interactive tenant moves while it bursts; every refusal, older drivers' included;
 * rollbacks; processes and the arbiter killed during a move; a restart after one; new
 * processes that come during one; the HTTP API, metrics and CDI spec. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "include/nvml_subset.h"
#include "tests/harness.h"
#include "tests/http_support.h"
#include "tests/move_support.h"
#include "tests/shim_support.h"

#define GPUS "X:4GiB:8,X:4GiB:8,Y:4GiB:8"
#define BIG_GPUS "X:16GiB:8,X:16GiB:8,Y:4GiB:8" /* moves that copy for a while */
#define MIB_S "1048576"

static char uuids[4][64];

/* A private host of gpus and a qarbiter on it (config: its file's text, NULL for none;
 * env: extra environment for it). */
static qt_arbiter_t *host_of(const char *gpus, const char *config, const char *const env[])
{
    qt_sim_private(gpus);
    cr_assert_eq(qts_gpu_uuids(uuids, 4), 3);
    qt_arbiter_t *arb = qt_arbiter_start(config, env);
    cr_assert_not_null(arb, "qarbiter did not start");
    return arb;
}

static qt_arbiter_t *host(const char *config, const char *const env[])
{
    return host_of(GPUS, config, env);
}

/* The driver's state of process pid, as the test process (a CUDA process of the same
 * simulated host) asks it. */
static CUprocessState pstate(pid_t pid)
{
    CUprocessState s = CU_PROCESS_STATE_FAILED;
    cr_assert_eq(cuInit(0), CUDA_SUCCESS);
    cuCheckpointProcessGetState(pid, &s);
    return s;
}

/* Waits until a move has locked pid: it is under way. */
static void await_locked(pid_t pid)
{
    uint64_t until = qt_now_ns() + 20000000000ull;
    while (pstate(pid) == CU_PROCESS_STATE_RUNNING && qt_now_ns() < until)
        qt_sleep_ms(1);
    cr_assert_neq(pstate(pid), CU_PROCESS_STATE_RUNNING, "the move never locked pid %d",
                  (int)pid);
}

/* qgpuctl with args (NULL-terminated), not waited for. */
static qt_proc_t *ctl_start(qt_arbiter_t *arb, ...) __attribute__((sentinel));
static qt_proc_t *ctl_start(qt_arbiter_t *arb, ...)
{
    const char *argv[16];
    int n = 0;
    char *prog = qt_build_path("qgpuctl");
    argv[n++] = prog;
    argv[n++] = "--socket-dir";
    argv[n++] = qt_arbiter_socket_dir(arb);
    va_list ap;
    va_start(ap, arb);
    for (const char *a; n < 15 && (a = va_arg(ap, const char *));)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    qt_proc_t *p = qt_spawn(argv, NULL);
    free(prog);
    cr_assert_not_null(p);
    return p;
}

/* The GPU whose NVML process list shows pid, -1 when none does. */
static int listed_on(pid_t pid)
{
    cr_assert_eq(nvmlInit_v2(), NVML_SUCCESS);
    int found = -1;
    for (unsigned d = 0; d < 3 && found < 0; d++) {
        nvmlDevice_t h;
        nvmlProcessInfo_t info[16];
        unsigned n = 16;
        cr_assert_eq(nvmlDeviceGetHandleByIndex_v2(d, &h), NVML_SUCCESS);
        cr_assert_eq(nvmlDeviceGetComputeRunningProcesses_v3(h, &n, info), NVML_SUCCESS);
        for (unsigned i = 0; i < n; i++)
            if (info[i].pid == (unsigned)pid)
                found = (int)d;
    }
    nvmlShutdown();
    return found;
}

/* The last "gpu " line of p's output. */
static void last_view(qt_proc_t *p, char *line, size_t cap)
{
    const char *out = qt_proc_stdout(p), *at = NULL;
    for (const char *s = out; (s = strstr(s, "gpu ")); s++)
        if (s == out || s[-1] == '\n')
            at = s;
    cr_assert_not_null(at, "no view in %s", out);
    size_t n = strcspn(at, "\n");
    snprintf(line, cap, "%.*s", (int)n, at);
}

/* The view of a process on GPU g: "gpu cuda=U nvml=U env=U". */
static char *view_on(int g)
{
    return qt_strf("gpu cuda=%s nvml=%s env=%s", uuids[g], uuids[g], uuids[g]);
}

static bool file_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    char buf[4096] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return strstr(buf, text) != NULL;
}

static char *record(qt_arbiter_t *arb, const char *id)
{
    return qt_strf("%s/vgpus/%s.json", qt_arbiter_state_dir(arb), id);
}

/* ---- a move ------------------------------------------------------------------------ */

Test(mover, a_workload_that_never_stops_launching_moves_with_its_data_quota_and_view,
     .timeout = 120)
{
    qt_arbiter_t *arb = host(NULL, NULL);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "a", "--memory", "1GiB", "--share", "40", "--gpu", "0",
                    NULL);
    /* 256 MiB of known bytes, 1 ms kernels back to back for 4 s */
    qt_proc_t *w = qtm_work(arb, &v, "268435456", "4", "1000");
    cr_assert(qts_wait_line(w, "ready ", 20000), "%s%s", qt_proc_stdout(w), qt_proc_stderr(w));
    qt_sleep_ms(500);
    cr_assert_eq(listed_on(qt_proc_pid(w)), 0);

    char *out = NULL, *err = NULL;
    cr_assert_eq(qt_ctl(arb, &out, &err, "migrate", v.id, "--gpu", "1", NULL), 0, "%s", err);
    char *want = qt_strf("moved %s from GPU 0 to GPU 1 in ", v.id);
    cr_assert(strncmp(out, want, strlen(want)) == 0, "%s", out);
    char *pid_moved = qt_strf("pid %d moved, paused ", (int)qt_proc_pid(w));
    /* what the device held for it: its 256 MiB and its context's (QTS_CTX) */
    cr_assert(strstr(out, pid_moved) && strstr(out, "ms (512 MiB)"), "%s", out);
    cr_assert_eq(strchr(out, '\n') - out + 1, (long)strlen(out), "one line: %s", out);

    /* everything follows the vGPU */
    cr_assert_eq(qtm_info_int(arb, v.id, "gpu"), 1);
    cr_assert_eq(listed_on(qt_proc_pid(w)), 1, "its memory is on GPU 1");
    char *rec = record(arb, v.id);
    cr_assert(file_has(rec, uuids[1]), "the record names GPU 1");
    char *listed = NULL;
    cr_assert_eq(qt_ctl(arb, &listed, NULL, "--json", "list", NULL), 0);
    json_t *ldoc = json_loads(listed, 0, NULL);
    json_t *lv = json_array_get(json_object_get(ldoc, "vgpus"), 0);
    cr_assert_eq(json_integer_value(json_object_get(lv, "gpu")), 1, "list: %s", listed);
    cr_assert_str_eq(json_string_value(json_object_get(lv, "gpu_uuid")), uuids[1]);
    json_decref(ldoc);
    free(listed);
    char *list = NULL;
    cr_assert_eq(qt_ctl(arb, &list, NULL, "--json", "gpus", NULL), 0);
    json_t *gdoc = json_loads(list, 0, NULL), *gpus = json_object_get(gdoc, "gpus");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(gpus, 0), "vgpus")), 0);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(gpus, 1), "vgpus")), 1);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(gpus, 1), "memory_reserved_mb")),
                 1024, "its quota is reserved on GPU 1 now");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(gpus, 0), "memory_reserved_mb")),
                 0);
    json_decref(gdoc);

    /* the workload never failed a call, kept its bytes, and sees GPU 1 */
    cr_assert_eq(qt_proc_wait(w, 30000), 0, "%s%s", qt_proc_stdout(w), qt_proc_stderr(w));
    char *wo = strdup(qt_proc_stdout(w));
    cr_assert(strstr(wo, "verify=ok"), "%s", wo);
    cr_assert(strstr(wo, "over=CUDA_ERROR_OUT_OF_MEMORY"), "its quota holds after: %s", wo);
    cr_assert(strstr(wo, "total=1073741824"), "the quota is its memory: %s", wo);
    cr_assert(strstr(wo, "nvml_total=1073741824\n"),
              "NVML shows the quota, through the handle it had before the move too: %s", wo);
    char line[512], *on1 = view_on(1), *on0 = view_on(0);
    last_view(w, line, sizeof line);
    cr_assert_str_eq(line, on1, "CUDA, NVML and CUDA_VISIBLE_DEVICES show GPU 1");
    cr_assert(strstr(wo, on0), "it started on GPU 0: %s", wo);
    /* a pause of tens of milliseconds; a second is a regression (a lost lease waits out
     * the grace) on any machine */
    cr_assert(strstr(wo, "max_gap_us="), "%s", wo);
    const char *g = strstr(wo, "max_gap_us=") + strlen("max_gap_us=");
    cr_assert_lt(atoll(g), 1000000, "launches paused %s us", g);

    free(wo);
    free(on0);
    free(on1);
    free(rec);
    free(list);
    free(pid_moved);
    free(want);
    free(out);
    free(err);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

Test(mover, its_share_holds_on_the_target_beside_the_tenant_there, .timeout = 120)
{
    qt_arbiter_t *arb = host(NULL, NULL);
    qts_vgpu_t a, b;
    qts_vgpu_create(arb, &a, "--vm", "a", "--memory", "512MiB", "--share", "30", "--gpu", "0",
                    NULL);
    qts_vgpu_create(arb, &b, "--vm", "b", "--memory", "512MiB", "--share", "70", "--gpu", "1",
                    NULL);
    /* both flood their GPU; the window both measure opens once a has moved */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char *at = qt_strf("%llu", (unsigned long long)ts.tv_sec * 1000000000ull +
                                   (unsigned long long)ts.tv_nsec + 3500000000ull);
    char *prog = qt_build_path("tests/progs/demo_worker");
    const char *argv[] = {prog, "--start-at", at, "--seconds", "3", NULL};
    qts_env_t ea, eb;
    qts_env_of(&ea, arb, &a);
    qts_env_of(&eb, arb, &b);
    qt_proc_t *wa = qt_spawn(argv, ea.v), *wb = qt_spawn(argv, eb.v);
    cr_assert(qts_wait_line(wa, "ready", 20000) && qts_wait_line(wb, "ready", 20000));
    qt_sleep_ms(300);
    char *err = NULL;
    cr_assert_eq(qt_ctl(arb, NULL, &err, "migrate", a.id, "--gpu", "1", NULL), 0, "%s", err);
    clock_gettime(CLOCK_REALTIME, &ts);
    cr_assert_lt((unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec,
                 strtoull(at, NULL, 10), "the move ended before the window opened");
    cr_assert_eq(qtm_info_int(arb, a.id, "gpu"), 1);
    cr_assert_eq(listed_on(qt_proc_pid(wa)), 1);
    cr_assert_eq(qt_proc_wait(wa, 30000), 0, "%s", qt_proc_stderr(wa));
    cr_assert_eq(qt_proc_wait(wb, 30000), 0, "%s", qt_proc_stderr(wb));
    char la[256], lb[256];
    cr_assert(qts_line(qt_proc_stdout(wa), "compute ", la, sizeof la));
    cr_assert(qts_line(qt_proc_stdout(wb), "compute ", lb, sizeof lb));
    cr_assert(strstr(la, "late=0") && strstr(lb, "late=0"), "%s / %s", la, lb);
    double pa = atof(strstr(la, "achieved_pct=") + 13), pb = atof(strstr(lb, "achieved_pct=") + 13);
    cr_assert(pa > 22 && pa < 38, "the moved vGPU gets its 30%% on GPU 1: %.1f%% (%s)", pa, la);
    cr_assert(pb > 62 && pb < 78, "the tenant there keeps its 70%%: %.1f%% (%s)", pb, lb);
    free(err);
    free(at);
    free(prog);
    qt_proc_destroy(&wa);
    qt_proc_destroy(&wb);
    qt_arbiter_destroy(&arb);
}

/* An interactive tenant (a frame of 1 ms every 8 ms, well below its share) runs short
 * bursts beside the tenant that floods its GPU; a move must wait for a burst under way as
 * for a lease, and it keeps bursting beside the tenant flooding the other GPU. Moved back
 * and forth four times, most moves catch a burst running. */
Test(mover, an_interactive_tenant_bursting_beside_the_holder_moves_back_and_forth,
     .timeout = 120)
{
    qt_arbiter_t *arb = host(NULL, NULL);
    qts_vgpu_t f0, f1, i;
    qts_vgpu_create(arb, &f0, "--vm", "f0", "--memory", "512MiB", "--share", "50", "--gpu", "0",
                    NULL);
    qts_vgpu_create(arb, &f1, "--vm", "f1", "--memory", "512MiB", "--share", "50", "--gpu", "1",
                    NULL);
    qts_vgpu_create(arb, &i, "--vm", "game", "--memory", "512MiB", "--share", "50", "--gpu", "0",
                    NULL);
    char *prog = qt_build_path("tests/progs/demo_worker");
    const char *flood[] = {prog, "--seconds", "6", NULL};
    const char *game[] = {prog, "--seconds", "6", "--frame-ms", "8", "--kernel-us", "1000", NULL};
    qts_env_t e0, e1, ei;
    qts_env_of(&e0, arb, &f0);
    qts_env_of(&e1, arb, &f1);
    qts_env_of(&ei, arb, &i);
    qt_proc_t *w0 = qt_spawn(flood, e0.v), *w1 = qt_spawn(flood, e1.v), *wi = qt_spawn(game, ei.v);
    cr_assert(qts_wait_line(w0, "ready", 20000) && qts_wait_line(w1, "ready", 20000) &&
                  qts_wait_line(wi, "ready", 20000),
              "%s%s%s", qt_proc_stderr(w0), qt_proc_stderr(w1), qt_proc_stderr(wi));
    qt_sleep_ms(300);
    char *moved = qt_strf("pid %d moved, paused ", (int)qt_proc_pid(wi));
    for (int k = 0; k < 4; k++) {
        const char *to = k % 2 ? "0" : "1";
        char *out = NULL, *err = NULL;
        cr_assert_eq(qt_ctl(arb, &out, &err, "migrate", i.id, "--gpu", to, NULL), 0,
                     "move %d: %s%s", k, out, err);
        const char *at = strstr(out, moved);
        cr_assert_not_null(at, "move %d: %s", k, out);
        /* its burst drains in 2 ms; a second means the move waited out a grace */
        cr_assert_lt(atof(at + strlen(moved)), 1000.0, "move %d: %s", k, out);
        cr_assert_eq(qtm_info_int(arb, i.id, "gpu"), atoi(to));
        cr_assert_eq(listed_on(qt_proc_pid(wi)), atoi(to), "its memory went along");
        free(out);
        free(err);
        qt_sleep_ms(200);
    }
    cr_assert_eq(qt_proc_wait(wi, 30000), 0, "no frame failed: %s%s", qt_proc_stdout(wi),
                 qt_proc_stderr(wi));
    char line[256];
    cr_assert(qts_line(qt_proc_stdout(wi), "frames ", line, sizeof line), "%s",
              qt_proc_stdout(wi));
    /* 125 frames a second asked; four pauses of a few ms and a loaded machine cost some */
    cr_assert_gt(atof(strstr(line, "fps=") + 4), 60.0, "%s", line);
    /* it did burst: a frame waits about 1.5 ms, where waiting for the flooding tenant's
     * lease to be preempted takes about 9 ms (burst_ms = 0) */
    cr_assert_lt(atof(strstr(line, "p50_us=") + 7), 6000.0, "%s", line);
    cr_assert_eq(qt_proc_wait(w0, 30000), 0, "%s", qt_proc_stderr(w0));
    cr_assert_eq(qt_proc_wait(w1, 30000), 0, "%s", qt_proc_stderr(w1));
    free(moved);
    free(prog);
    qt_proc_destroy(&wi);
    qt_proc_destroy(&w0);
    qt_proc_destroy(&w1);
    qt_arbiter_destroy(&arb);
}

/* ---- refusals: nothing changes --------------------------------------------------- */

/* qgpuctl migrate ID --gpu target must fail with a line containing want; v stays on gpu. */
static void refused(qt_arbiter_t *arb, const qts_vgpu_t *v, const char *target, const char *want,
                    int gpu)
{
    char *out = NULL, *err = NULL;
    cr_assert_eq(qt_ctl(arb, &out, &err, "migrate", v->id, "--gpu", target, NULL), 1, "%s%s", out,
                 err);
    cr_assert(strstr(err, want), "want '%s' in: %s", want, err);
    cr_assert_eq(strchr(err, '\n') - err + 1, (long)strlen(err), "one line: %s", err);
    cr_assert_str_eq(out, "");
    cr_assert_eq(qtm_info_int(arb, v->id, "gpu"), gpu);
    free(out);
    free(err);
}

Test(mover, is_refused_up_front_with_one_line_and_nothing_moves, .timeout = 120)
{
    qt_arbiter_t *arb = host(NULL, NULL);
    qts_vgpu_t v, big;
    qts_vgpu_create(arb, &v, "--vm", "a", "--memory", "1GiB", "--share", "40", "--gpu", "0",
                    NULL);
    qt_proc_t *w = qtm_work(arb, &v, MIB_S, "30", "1000");
    cr_assert(qts_wait_line(w, "ready ", 20000));
    refused(arb, &v, "0", "is on GPU 0 already", 0);
    refused(arb, &v, "2", "GPU 2 is a Y and vGPU vg-1's GPU 0 a X: the driver moves processes "
                          "only between GPUs of one chip", 0);
    refused(arb, &v, "7", "there is no GPU 7", 0);
    refused(arb, &v, "GPU-00000000-0000-0000-0000-000000000000", "there is no GPU GPU-0000", 0);
    qts_vgpu_create(arb, &big, "--vm", "big", "--memory", "3584MiB", "--share", "50", "--gpu", "1",
                    NULL);
    refused(arb, &v, "1", "GPU 1 has 512 MiB and 50% free, 1024 MiB and 40% asked", 0);
    char *out = NULL, *err = NULL;
    cr_assert_eq(qt_ctl(arb, &out, &err, "migrate", "vg-99", "--gpu", "1", NULL), 1);
    cr_assert(strstr(err, "there is no vGPU 'vg-99'"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(qt_ctl(arb, NULL, &err, "migrate", v.id, NULL), 2, "--gpu is needed");
    free(err);
    cr_assert_eq(qt_ctl(arb, NULL, &err, "migrate", v.id, "--gpu", "one", NULL), 2);
    free(err);

    /* a process the driver has locked (another checkpointing tool) */
    cr_assert_eq(cuInit(0), CUDA_SUCCESS);
    cr_assert_eq(cuCheckpointProcessLock(qt_proc_pid(w), NULL), CUDA_SUCCESS);
    char *dest = qt_strf("%s", uuids[1]);
    qt_ctl(arb, NULL, NULL, "destroy", big.id, NULL);
    char *why = qt_strf("pid %d of %s is locked by someone else: it cannot move now",
                        (int)qt_proc_pid(w), v.id);
    refused(arb, &v, dest, why, 0);
    cr_assert_eq(cuCheckpointProcessUnlock(qt_proc_pid(w), NULL), CUDA_SUCCESS);
    cr_assert_eq(qt_ctl(arb, NULL, NULL, "migrate", v.id, "--gpu", dest, NULL), 0,
                 "by UUID, once it is unlocked");
    cr_assert_eq(qtm_info_int(arb, v.id, "gpu"), 1);
    free(why);
    free(dest);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

/* On a driver of CUDA version (QSIM_DRIVER_VERSION), a move of a vGPU with a running
 * process is refused with want, and one without processes is done. */
static void older_driver(const char *version, const char *want)
{
    char *ver = qt_strf("QSIM_DRIVER_VERSION=%s", version);
    const char *env[] = {ver, NULL};
    qt_arbiter_t *arb = host(NULL, env);
    qts_vgpu_t v, idle;
    qts_vgpu_create(arb, &v, "--vm", "a", "--profile", "Q1", "--gpu", "0", NULL);
    qts_vgpu_create(arb, &idle, "--vm", "b", "--profile", "Q1", "--gpu", "0", NULL);
    qt_proc_t *w = qtm_work(arb, &v, MIB_S, "30", "1000");
    cr_assert(qts_wait_line(w, "ready ", 20000));
    refused(arb, &v, "1", want, 0);
    cr_assert_eq(kill(qt_proc_pid(w), 0), 0, "it still runs");
    /* a vGPU without processes needs no driver call */
    char *out = NULL;
    cr_assert_eq(qt_ctl(arb, &out, NULL, "migrate", idle.id, "--gpu", "1", NULL), 0);
    cr_assert(strstr(out, "moved vg-2 from GPU 0 to GPU 1"), "%s", out);
    free(out);
    free(ver);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

Test(mover, a_driver_older_than_r580_is_refused_naming_the_version_needed, .timeout = 120)
{
    older_driver("12080",
                 "the CUDA driver supports CUDA 12.8, whose checkpoint API restores a process "
                 "onto its own GPU only: moving a vGPU needs NVIDIA driver 580 (CUDA 13.0) or "
                 "newer");
}

Test(mover, a_driver_without_the_checkpoint_api_is_refused_naming_the_version_needed,
     .timeout = 120)
{
    older_driver("12040", "the CUDA driver supports CUDA 12.4 and has no checkpoint API: moving "
                          "a vGPU needs NVIDIA driver 580 (CUDA 13.0) or newer");
}

/* ---- failures half-way: everything goes back ------------------------------------- */

Test(mover, a_target_that_fills_up_before_the_restore_rolls_back_to_the_source,
     .timeout = 120)
{
    qt_arbiter_t *arb = host(NULL, NULL);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "a", "--memory", "1GiB", "--share", "40", "--gpu", "0",
                    NULL);
    qt_proc_t *w = qtm_work(arb, &v, "268435456", "4", "1000");
    cr_assert(qts_wait_line(w, "ready ", 20000));
    /* A process outside every vGPU takes GPU 1's memory: the admission of the quota is
     * fine, the device is not. */
    qts_env_t plain;
    qts_env_plain(&plain);
    char *prog = qt_build_path("tests/progs/sim_worker");
    const char *fill[] = {prog, "alloc", "1", "3758096384", NULL}; /* 3.5 GiB */
    qt_proc_t *hog = qt_spawn(fill, plain.v);
    cr_assert(qts_wait_line(hog, "ready", 20000), "%s", qt_proc_stderr(hog));
    cr_assert(qts_used_becomes(arb, &v, 268435456, 5000), "its use is reported");
    char *out = NULL, *err = NULL;
    cr_assert_eq(qt_ctl(arb, &out, &err, "migrate", v.id, "--gpu", "1", NULL), 1, "%s", out);
    char *want = qt_strf("vg-1 stays on GPU 0: GPU 1 has no room for pid %d's ",
                         (int)qt_proc_pid(w));
    char *then = qt_strf(" MiB of vg-1 (CUDA_ERROR_OUT_OF_MEMORY) (rolled back); pid %d back, "
                         "paused",
                         (int)qt_proc_pid(w));
    cr_assert(strstr(err, want) && strstr(err, then), "want '%s...%s' in %s", want, then, err);
    free(then);
    cr_assert_eq(qtm_info_int(arb, v.id, "gpu"), 0);
    char *rec = record(arb, v.id);
    cr_assert(file_has(rec, uuids[0]), "the record still names GPU 0");
    cr_assert_eq(listed_on(qt_proc_pid(w)), 0, "its memory is back on GPU 0");
    cr_assert_eq(qt_proc_wait(w, 30000), 0, "%s%s", qt_proc_stdout(w), qt_proc_stderr(w));
    cr_assert(strstr(qt_proc_stdout(w), "verify=ok"));
    char line[512], *on0 = view_on(0);
    last_view(w, line, sizeof line);
    cr_assert_str_eq(line, on0, "it never saw another GPU");
    /* and it can move once there is room */
    qt_proc_destroy(&hog);
    free(on0);
    free(rec);
    free(want);
    free(out);
    free(err);
    free(prog);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

Test(mover, work_that_does_not_drain_in_time_rolls_back, .timeout = 120)
{
    qt_arbiter_t *arb = host(NULL, NULL);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "a", "--memory", "1GiB", "--share", "40", "--gpu", "0",
                    NULL);
    /* One kernel of 4 s: its lease is taken back 1 s after its end (lease_grace_ms), the
     * lock then waits 2 s for the kernel and gives up with more than a second left. */
    qt_proc_t *w = qtm_work(arb, &v, MIB_S, "3", "4000000");
    cr_assert(qts_wait_line(w, "ready ", 20000));
    qt_sleep_ms(300);
    char *err = NULL;
    cr_assert_eq(qt_ctl(arb, NULL, &err, "migrate", v.id, "--gpu", "1", NULL), 1);
    char *want = qt_strf("vg-1 stays on GPU 0: pid %d of vg-1 could not be locked within 2000 ms: "
                         "its queued GPU work did not finish (rolled back); pid %d back",
                         (int)qt_proc_pid(w), (int)qt_proc_pid(w));
    cr_assert(strstr(err, want), "want '%s' in %s", want, err);
    cr_assert_eq(qtm_info_int(arb, v.id, "gpu"), 0);
    cr_assert_eq(listed_on(qt_proc_pid(w)), 0);
    cr_assert_eq(qt_proc_wait(w, 30000), 0, "%s%s", qt_proc_stdout(w), qt_proc_stderr(w));
    cr_assert(strstr(qt_proc_stdout(w), "verify=ok"));
    free(want);
    free(err);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

/* ---- kill -9 during a move --------------------------------------------------------- */

Test(mover, a_process_killed_during_a_move_is_dropped_and_the_others_move, .timeout = 120)
{
    qt_arbiter_t *arb = host_of(BIG_GPUS, NULL, NULL);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "a", "--memory", "10GiB", "--share", "40", "--gpu", "0",
                    NULL);
    /* 4 GiB each: each checkpoint and restore copies for about 360 ms */
    qt_proc_t *a = qtm_work(arb, &v, "4294967296", "8", "1000");
    qt_proc_t *b = qtm_work(arb, &v, "4294967296", "8", "1000");
    cr_assert(qts_wait_line(a, "ready ", 30000) && qts_wait_line(b, "ready ", 30000));
    qt_sleep_ms(300);
    qt_proc_t *m = ctl_start(arb, "migrate", v.id, "--gpu", "1", NULL);
    await_locked(qt_proc_pid(a));
    qt_sleep_ms(200); /* in the first copies */
    qt_proc_kill(a, SIGKILL);
    cr_assert_eq(qt_proc_wait(m, 30000), 0, "%s", qt_proc_stderr(m));
    char *exited = qt_strf("pid %d exited", (int)qt_proc_pid(a));
    char *moved = qt_strf("pid %d moved", (int)qt_proc_pid(b));
    cr_assert(strstr(qt_proc_stdout(m), exited) && strstr(qt_proc_stdout(m), moved), "%s",
              qt_proc_stdout(m));
    cr_assert_eq(qtm_info_int(arb, v.id, "gpu"), 1);
    cr_assert_eq(qt_proc_wait(b, 30000), 0, "%s%s", qt_proc_stdout(b), qt_proc_stderr(b));
    cr_assert(strstr(qt_proc_stdout(b), "verify=ok"));
    free(exited);
    free(moved);
    qt_proc_destroy(&m);
    qt_proc_destroy(&a);
    qt_proc_destroy(&b);
    qt_arbiter_destroy(&arb);
}

struct settled {
    qt_arbiter_t *arb;
    const qts_vgpu_t *v;
    pid_t pid;
    int gpu;
};

/* The restarted arbiter and NVML agree where the vGPU and its process are. */
static bool agree(void *arg)
{
    struct settled *s = arg;
    char *out = NULL;
    if (qt_ctl(s->arb, &out, NULL, "--json", "info", s->v->id, NULL) != 0) {
        free(out);
        return false;
    }
    json_t *doc = json_loads(out, 0, NULL);
    free(out);
    s->gpu = (int)json_integer_value(json_object_get(doc, "gpu"));
    long long procs = json_integer_value(json_object_get(doc, "procs"));
    json_decref(doc);
    return procs == 1 && listed_on(s->pid) == s->gpu;
}

Test(mover, after_kill_9_of_the_arbiter_during_a_move_the_vgpu_and_its_process_are_on_one_gpu,
     .timeout = 120)
{
    qt_arbiter_t *arb = host_of(BIG_GPUS, NULL, NULL);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "a", "--memory", "6GiB", "--share", "40", "--gpu", "0",
                    NULL);
    /* 4 GiB: the checkpoint copies for about 360 ms, the restore as long */
    qt_proc_t *w = qtm_work(arb, &v, "4294967296", "8", "1000");
    cr_assert(qts_wait_line(w, "ready ", 30000));
    qt_sleep_ms(300);
    qt_proc_t *m = ctl_start(arb, "migrate", v.id, "--gpu", "1", NULL);
    await_locked(qt_proc_pid(w));
    qt_sleep_ms(150); /* in the checkpoint's copy: the commit is at least 570 ms away */
    qt_arbiter_kill(arb, SIGKILL);
    cr_assert_neq(qt_proc_wait(m, 10000), 0, "its connection closed");
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    struct settled s = {arb, &v, qt_proc_pid(w), -1};
    cr_assert(qt_wait_until(agree, &s, 20000),
              "the record says GPU %d, NVML shows pid %d on GPU %d", s.gpu, (int)s.pid,
              listed_on(s.pid));
    cr_assert_eq(s.gpu, 0, "the move never committed: it is undone");
    /* it runs there: no call failed, its data is whole, it sees that GPU */
    cr_assert_eq(qt_proc_wait(w, 30000), 0, "%s%s", qt_proc_stdout(w), qt_proc_stderr(w));
    cr_assert(strstr(qt_proc_stdout(w), "verify=ok"));
    char line[512], *on = view_on(s.gpu);
    last_view(w, line, sizeof line);
    cr_assert_str_eq(line, on);
    /* and the restarted arbiter moves it */
    free(on);
    qt_proc_destroy(&m);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

Test(mover, a_restarted_arbiter_finds_a_moved_vgpu_and_its_process_on_the_new_gpu,
     .timeout = 120)
{
    qt_arbiter_t *arb = host(NULL, NULL);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "a", "--memory", "1GiB", "--share", "40", "--gpu", "0",
                    NULL);
    qt_proc_t *w = qtm_work(arb, &v, "268435456", "5", "1000");
    cr_assert(qts_wait_line(w, "ready ", 20000), "%s%s", qt_proc_stdout(w), qt_proc_stderr(w));
    qt_sleep_ms(300);
    cr_assert_eq(qt_ctl(arb, NULL, NULL, "migrate", v.id, "--gpu", "1", NULL), 0);
    /* the state file is all the next arbiter has */
    qt_arbiter_kill(arb, SIGKILL);
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    struct settled s = {arb, &v, qt_proc_pid(w), -1};
    cr_assert(qt_wait_until(agree, &s, 20000),
              "the record says GPU %d, NVML shows pid %d on GPU %d", s.gpu, (int)s.pid,
              listed_on(s.pid));
    cr_assert_eq(s.gpu, 1);
    char *list = NULL;
    cr_assert_eq(qt_ctl(arb, &list, NULL, "--json", "gpus", NULL), 0);
    json_t *doc = json_loads(list, 0, NULL), *gpus = json_object_get(doc, "gpus");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(gpus, 1), "memory_reserved_mb")),
                 1024, "its quota is held on GPU 1: %s", list);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(gpus, 0), "memory_reserved_mb")),
                 0, "%s", list);
    json_decref(doc);
    free(list);
    /* its process said hello again and runs on, on GPU 1, with its data and quota */
    cr_assert_eq(qt_proc_wait(w, 30000), 0, "%s%s", qt_proc_stdout(w), qt_proc_stderr(w));
    const char *wo = qt_proc_stdout(w);
    cr_assert(strstr(wo, "verify=ok") && strstr(wo, "over=CUDA_ERROR_OUT_OF_MEMORY"), "%s", wo);
    char line[512], *on1 = view_on(1);
    last_view(w, line, sizeof line);
    cr_assert_str_eq(line, on1);
    free(on1);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

Test(mover, a_second_move_waits_its_turn_and_the_moving_vgpu_is_neither_resized_nor_destroyed,
     .timeout = 120)
{
    qt_arbiter_t *arb = host_of(BIG_GPUS, NULL, NULL);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "a", "--memory", "6GiB", "--share", "40", "--gpu", "0",
                    NULL);
    qt_proc_t *w = qtm_work(arb, &v, "4294967296", "6", "1000");
    cr_assert(qts_wait_line(w, "ready ", 30000));
    qt_sleep_ms(300);
    qt_proc_t *first = ctl_start(arb, "migrate", v.id, "--gpu", "1", NULL);
    await_locked(qt_proc_pid(w)); /* the move copies 4 GiB twice: 720 ms */
    qt_proc_t *second = ctl_start(arb, "migrate", v.id, "--gpu", "1", NULL);
    char *out = NULL, *err = NULL;
    cr_assert_eq(qt_ctl(arb, &out, &err, "resize", v.id, "--memory", "5GiB", NULL), 1, "%s", out);
    cr_assert(strstr(err, "is moving to another GPU: resize it once that is done"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(qt_ctl(arb, &out, &err, "destroy", v.id, NULL), 1, "%s", out);
    cr_assert(strstr(err, "is moving to another GPU: destroy it once that is done"), "%s", err);
    free(out);
    free(err);
    cr_assert_eq(qt_proc_wait(first, 30000), 0, "%s", qt_proc_stderr(first));
    /* the second, taken up once the first is over, finds it there */
    cr_assert_eq(qt_proc_wait(second, 30000), 1, "%s", qt_proc_stdout(second));
    cr_assert(strstr(qt_proc_stderr(second), "is on GPU 1 already"), "%s",
              qt_proc_stderr(second));
    cr_assert_eq(qtm_info_int(arb, v.id, "gpu"), 1);
    cr_assert_eq(qtm_info_int(arb, v.id, "memory_mb"), 6144, "the resize changed nothing");
    cr_assert_eq(qt_proc_wait(w, 30000), 0, "%s%s", qt_proc_stdout(w), qt_proc_stderr(w));
    qt_proc_destroy(&second);
    qt_proc_destroy(&first);
    qt_proc_destroy(&w);
    qt_arbiter_destroy(&arb);
}

/* ---- newcomers wait ---------------------------------------------------------------- */

Test(mover, a_process_that_joins_during_a_move_waits_and_starts_on_the_new_gpu,
     .timeout = 120)
{
    qt_arbiter_t *arb = host_of(BIG_GPUS, NULL, NULL);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "a", "--memory", "6GiB", "--share", "40", "--gpu", "0",
                    NULL);
    qt_proc_t *old = qtm_work(arb, &v, "4294967296", "5", "1000");
    cr_assert(qts_wait_line(old, "ready ", 30000));
    qt_sleep_ms(300);
    qt_proc_t *m = ctl_start(arb, "migrate", v.id, "--gpu", "1", NULL);
    await_locked(qt_proc_pid(old)); /* the move copies 4 GiB twice: 720 ms */
    qt_proc_t *late = qtm_work(arb, &v, MIB_S, "1", "1000");
    cr_assert_eq(qt_proc_wait(m, 30000), 0, "%s", qt_proc_stderr(m));
    const char *mo = qt_proc_stdout(m);
    char *one = qt_strf("pid %d moved, paused", (int)qt_proc_pid(old));
    cr_assert(strstr(mo, one), "%s", mo);
    cr_assert_null(strstr(strstr(mo, one) + 1, "pid "), "it alone moved: %s", mo);
    cr_assert_eq(qt_proc_wait(late, 30000), 0, "%s%s", qt_proc_stdout(late),
                 qt_proc_stderr(late));
    char *on1 = view_on(1), first[512];
    cr_assert(qts_line(qt_proc_stdout(late), "gpu ", first, sizeof first));
    cr_assert_str_eq(first, on1, "it started on GPU 1, never on GPU 0");
    cr_assert_eq(qt_proc_wait(old, 30000), 0);
    free(one);
    free(on1);
    qt_proc_destroy(&m);
    qt_proc_destroy(&late);
    qt_proc_destroy(&old);
    qt_arbiter_destroy(&arb);
}

/* ---- everything else follows: the HTTP API, the metrics, the CDI spec ------------- */

struct http_view {
    const char *addr, *path;
    int gpu;
};

static bool http_says_gpu(void *arg)
{
    struct http_view *h = arg;
    http_resp_t r = http_get(h->addr, h->path, 2000);
    json_t *doc = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    bool ok = doc && json_integer_value(json_object_get(doc, "gpu")) == h->gpu;
    json_decref(doc);
    http_resp_free(&r);
    return ok;
}

Test(mover, the_http_api_and_the_metrics_follow_the_vgpu, .timeout = 60)
{
    char addr[64];
    qt_arbiter_t *arb = http_arbiter(GPUS, NULL, NULL, addr);
    cr_assert_eq(qts_gpu_uuids(uuids, 4), 3);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "web", "--profile", "Q1", "--gpu", "0", NULL);
    cr_assert_eq(qt_ctl(arb, NULL, NULL, "migrate", v.id, "--gpu", "1", NULL), 0);
    char *path = qt_strf("/api/v1/vgpus/%s", v.id);
    struct http_view h = {addr, path, 1};
    cr_assert(qt_wait_until(http_says_gpu, &h, 5000), "the API shows it on GPU 1");
    http_resp_t r = http_get(addr, "/metrics", 2000);
    cr_assert_eq(r.status, 200);
    char *series = qt_strf("qvgpu_vgpu_memory_quota_bytes{vgpu=\"%s\",vm=\"web\",gpu=\"1\"}", v.id);
    cr_assert_eq(prom_value(r.body, series), 1073741824.0);
    http_resp_free(&r);
    free(series);
    free(path);
    qt_arbiter_destroy(&arb);
}

Test(mover, the_cdi_spec_names_the_new_gpu, .timeout = 60)
{
    qt_sim_private(GPUS);
    cr_assert_eq(qts_gpu_uuids(uuids, 4), 3);
    char *tmp = qt_tmpdir(), *tenant = qt_strf("%s/tenant", tmp), *cdi = qt_strf("%s/cdi", tmp);
    const char *args[] = {"--tenant-dir", tenant, "--cdi-dir", cdi, NULL};
    qt_arbiter_t *arb = qt_arbiter_start_args(NULL, NULL, args);
    cr_assert_not_null(arb);
    qts_vgpu_t v;
    qts_vgpu_create(arb, &v, "--vm", "ctr", "--profile", "Q1", "--gpu", "0", NULL);
    char *spec = qt_strf("%s/qvgpu-%s.json", cdi, v.id);
    char *env0 = qt_strf("CUDA_VISIBLE_DEVICES=%s", uuids[0]);
    char *env1 = qt_strf("CUDA_VISIBLE_DEVICES=%s", uuids[1]);
    cr_assert(file_has(spec, env0), "%s", spec);
    cr_assert_eq(qt_ctl(arb, NULL, NULL, "migrate", v.id, "--gpu", "1", NULL), 0);
    cr_assert(file_has(spec, env1) && !file_has(spec, uuids[0]), "the spec names GPU 1 alone");
    free(env0);
    free(env1);
    free(spec);
    free(tenant);
    free(cdi);
    free(tmp);
    qt_arbiter_destroy(&arb);
}
