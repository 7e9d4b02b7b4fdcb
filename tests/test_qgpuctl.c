/* test_qgpuctl.c - the command line end to end against a real qarbiter on the sim:
 * output (tables and --json), exit statuses, one-line errors, run and env. */
#include "tests/ctl_support.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Runs qgpuctl and asserts it succeeded; returns its stdout (caller frees). */
#define CTL_OK(arb, ...)                                                                           \
    ({                                                                                             \
        char *out_, *err_;                                                                         \
        int rc_ = qt_ctl(arb, &out_, &err_, __VA_ARGS__, NULL);                                    \
        cr_assert_eq(rc_, 0, "exit %d: %s", rc_, err_);                                            \
        free(err_);                                                                                \
        out_;                                                                                      \
    })

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    cr_assert_not_null(doc, "not JSON (%s): %s", je.text, text);
    return doc;
}

/* "<ASan runtime>:" under SAN=1, where it must be preloaded before anything instrumented;
 * "" otherwise. Static storage. */
static const char *asan_first(void)
{
    static char buf[512];
    const char *asan = qt_asan_runtime();
    if (asan)
        snprintf(buf, sizeof buf, "%s:", asan);
    return buf;
}

/* Creates a vGPU with the CLI and returns its id (caller frees). */
static char *ctl_create_cli(qt_arbiter_t *arb, const char *vm, const char *profile)
{
    char *out = CTL_OK(arb, "create", "--vm", vm, "--profile", profile);
    cr_assert_eq(count_lines(out), 1, "the id alone on one line: %s", out);
    out[strcspn(out, "\n")] = '\0';
    cr_assert(strncmp(out, "vg-", 3) == 0, "%s", out);
    return out;
}

Test(qgpuctl, create_prints_the_new_id_alone_on_one_line)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    char *a = ctl_create_cli(arb, "vm-1", "Q2");
    char *out = CTL_OK(arb, "create", "--vm", "vm-2", "--memory", "1536MiB", "--share", "15%",
                       "--limit", "30", "--gpu", "2");
    cr_assert_str_neq(out, a);
    char *json = CTL_OK(arb, "info", "--json", "vg-2");
    json_t *doc = parse(json);
    cr_assert_eq(json_integer_value(json_object_get(doc, "memory_mb")), 1536);
    cr_assert_eq(json_integer_value(json_object_get(doc, "gpu")), 2);
    cr_assert_eq(json_integer_value(json_object_get(doc, "limit")), 30);
    json_decref(doc);
    free(json), free(out), free(a);
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, list_info_gpus_and_stats_print_tables)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    char *id = ctl_create_cli(arb, "my-vm", "Q4");
    char *list = CTL_OK(arb, "list");
    cr_assert(strstr(list, "ID") && strstr(list, "PROFILE"), "%s", list);
    cr_assert(strstr(list, id) && strstr(list, "my-vm") && strstr(list, "4 GiB"), "%s", list);
    cr_assert_eq(count_lines(list), 2, "%s", list);
    char *info = CTL_OK(arb, "info", id);
    cr_assert(strstr(info, "memory:      4 GiB") && strstr(info, "share:       40%"), "%s", info);
    cr_assert(strstr(info, "cuda_cores:  1024"), "%s", info);
    char *gpus = CTL_OK(arb, "gpus");
    cr_assert(strstr(gpus, "NVIDIA GeForce GTX 1050") && strstr(gpus, "oversubscription"), "%s",
              gpus);
    cr_assert_eq(count_lines(gpus), 5, "header, three GPUs, ratios: %s", gpus);
    char *stats = CTL_OK(arb, "stats");
    cr_assert(strstr(stats, "vGPUs: 1 (0 active)"), "%s", stats);
    free(list), free(info), free(gpus), free(stats), free(id);
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, json_is_one_document_before_or_after_the_command)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    char *id = ctl_create_cli(arb, "vm", "Q1");
    char *a = CTL_OK(arb, "--json", "list");
    char *b = CTL_OK(arb, "list", "--json");
    cr_assert_str_eq(a, b);
    json_t *doc = parse(a);
    json_t *v = json_array_get(json_object_get(doc, "vgpus"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(v, "id")), id);
    cr_assert_str_eq(json_string_value(json_object_get(v, "profile")), "Q1");
    const char *keys[] = {"vm",    "gpu",  "gpu_uuid",    "memory_mb", "cuda_cores", "share",
                          "limit", "util", "memory_used", "procs",     "created"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert_not_null(json_object_get(v, keys[i]), "INFO lacks %s", keys[i]);
    json_decref(doc);
    char *g = CTL_OK(arb, "--json", "gpus");
    doc = parse(g);
    cr_assert_eq(json_array_size(json_object_get(doc, "gpus")), 3);
    cr_assert(json_is_number(json_object_get(doc, "oversub_memory")));
    json_decref(doc);
    char *s = CTL_OK(arb, "stats", "--json");
    doc = parse(s);
    cr_assert_eq(json_integer_value(json_object_get(doc, "vgpus_total")), 1);
    cr_assert_eq(json_integer_value(json_object_get(doc, "memory_reserved_mb")), 1024);
    json_decref(doc);
    free(a), free(b), free(g), free(s), free(id);
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, resize_and_destroy_show_in_the_list)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    char *id = ctl_create_cli(arb, "vm", "Q2");
    free(CTL_OK(arb, "resize", id, "--memory", "3GiB", "--share", "35", "--limit", "50"));
    char *json = CTL_OK(arb, "--json", "info", id);
    json_t *doc = parse(json);
    cr_assert_eq(json_integer_value(json_object_get(doc, "memory_mb")), 3072);
    cr_assert_eq(json_integer_value(json_object_get(doc, "share")), 35);
    cr_assert_eq(json_integer_value(json_object_get(doc, "limit")), 50);
    json_decref(doc);
    free(CTL_OK(arb, "destroy", id));
    char *list = CTL_OK(arb, "list");
    cr_assert_null(strstr(list, id), "%s", list);
    free(json), free(list), free(id);
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, failures_are_one_line_on_stderr_with_status_1)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    struct {
        const char *args[8];
        const char *words;
    } cases[] = {
        {{"info", "vg-404"}, "there is no vGPU 'vg-404'"},
        {{"destroy", "vg-404"}, "cannot destroy vGPU 'vg-404'"},
        {{"create", "--vm", "x", "--profile", "Q3"}, "unknown profile 'Q3'"},
        {{"create", "--vm", "x", "--profile", "Q8", "--gpu", "2"}, "GPU 2 has 4096 MiB in all"},
        {{"create", "--vm", "x", "--profile", "Q1", "--gpu", "9"}, "no GPU 9"},
        {{"run", "vg-404", "--", "true"}, "cannot get vGPU 'vg-404'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char **a = cases[i].args;
        char *out, *err;
        int rc = qt_ctl(arb, &out, &err, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], NULL);
        cr_assert_eq(rc, 1, "case %zu: %d %s", i, rc, err);
        cr_assert_str_eq(out, "", "case %zu", i);
        cr_assert(strncmp(err, "qgpuctl: ", 9) == 0, "case %zu: %s", i, err);
        cr_assert(strstr(err, cases[i].words), "case %zu: %s", i, err);
        cr_assert_eq(count_lines(err), 1, "case %zu: %s", i, err);
        free(out), free(err);
    }
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, bad_usage_exits_2)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL);
    struct {
        const char *args[8];
        const char *words;
    } cases[] = {
        {{NULL}, "no command"},
        {{"frobnicate"}, "unknown command 'frobnicate'"},
        {{"create", "--profile", "Q1"}, "needs --vm"},
        {{"create", "--vm", "x"}, "needs --profile"},
        {{"create", "--vm", "x", "--profile", "Q1", "--share", "20"}, "not both"},
        {{"create", "--vm", "x", "--memory", "2GiB", "--share", "150"}, "--share '150'"},
        {{"create", "--vm", "x", "--memory", "lots", "--share", "10"}, "--memory"},
        {{"create", "--vm"}, "--vm needs a value"},
        {{"resize", "vg-1"}, "needs --memory, --share or --limit"},
        {{"info"}, "info takes one vGPU id"},
        {{"run", "vg-1", "true"}, "run ID -- CMD"},
        {{"--colour", "list"}, "unknown option '--colour'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char **a = cases[i].args;
        char *out, *err;
        int rc = qt_ctl(arb, &out, &err, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], NULL);
        cr_assert_eq(rc, 2, "case %zu: %d %s", i, rc, err);
        cr_assert(strstr(err, cases[i].words), "case %zu: %s", i, err);
        cr_assert_eq(count_lines(err), 1, "case %zu: %s", i, err);
        free(out), free(err);
    }
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, run_hands_the_workload_its_vgpu_and_returns_its_status)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    char *id = ctl_create_cli(arb, "vm", "Q2");
    qv_client_t *c = ctl_client(arb);
    qv_creds_t cr;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_creds(c, id, &cr, err), 0, "%s", err);
    qv_disconnect(&c);
    char *bin = qt_build_path("qgpuctl");
    char *shim = qt_build_path("libqshim.so");
    char *keep = qt_build_path("libqvgpu.so"); /* any library already preloaded */
    char *preload;
    cr_assert(asprintf(&preload, "LD_PRELOAD=%s%s", asan_first(), keep) > 0);
    const char *argv[] = {bin,
                          "--socket-dir",
                          qt_arbiter_socket_dir(arb),
                          "run",
                          id,
                          "--",
                          "sh",
                          "-c",
                          "echo \"$QVGPU_VGPU|$QVGPU_SECRET|$QVGPU_SOCKET_DIR|"
                          "$CUDA_VISIBLE_DEVICES|$LD_PRELOAD|$KEPT\"; exit 7",
                          NULL};
    const char *env[] = {preload, "KEPT=yes", NULL};
    char *out, *errs;
    cr_assert_eq(qt_run(argv, env, 10000, &out, &errs), 7, "%s", errs);
    char want[1024];
    snprintf(want, sizeof want, "%s|%s|%s|%s|", id, cr.secret, qt_arbiter_socket_dir(arb),
             cr.gpu_uuid);
    cr_assert(strncmp(out, want, strlen(want)) == 0, "got %s want %s", out, want);
    const char *pre = out + strlen(want);
    const char *k = strstr(pre, keep), *s = strstr(pre, shim);
    cr_assert(k && s && k < s, "existing preloads first, then the shim: %s", pre);
    cr_assert(strstr(out, "|yes\n"), "the rest of the environment is kept: %s", out);
    free(out), free(errs), free(bin), free(shim), free(keep), free(preload), free(id);
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, env_prints_exports_a_shell_can_eval)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    char *id = ctl_create_cli(arb, "vm", "Q1");
    char *out = CTL_OK(arb, "env", id);
    cr_assert_eq(count_lines(out), 5, "%s", out);
    const char *names[] = {"LD_PRELOAD", "QVGPU_VGPU", "QVGPU_SECRET", "QVGPU_SOCKET_DIR",
                           "CUDA_VISIBLE_DEVICES"};
    for (size_t i = 0; i < 5; i++) {
        char want[64];
        snprintf(want, sizeof want, "export %s='", names[i]);
        cr_assert(strstr(out, want), "%s", out);
    }
    char *script;
    cr_assert(asprintf(&script, "%s\necho \"$QVGPU_VGPU\"", out) > 0);
    const char *argv[] = {"sh", "-c", script, NULL};
    char *res;
    cr_assert_eq(qt_run(argv, NULL, 5000, &res, NULL), 0);
    char want[64];
    snprintf(want, sizeof want, "%s\n", id);
    cr_assert_str_eq(res, want);
    free(res), free(script), free(out), free(id);
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, the_socket_dir_may_come_from_the_environment)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL);
    char *bin = qt_build_path("qgpuctl");
    char *env0;
    cr_assert(asprintf(&env0, "QVGPU_SOCKET_DIR=%s", qt_arbiter_socket_dir(arb)) > 0);
    const char *argv[] = {bin, "create", "--vm", "e", "--profile", "Q1", NULL};
    const char *env[] = {env0, NULL};
    char *out, *err;
    cr_assert_eq(qt_run(argv, env, 5000, &out, &err), 0, "%s", err);
    cr_assert(strncmp(out, "vg-", 3) == 0, "%s", out);
    free(out), free(err);
    const char *nowhere[] = {"QVGPU_SOCKET_DIR=/nonexistent", NULL};
    const char *list[] = {bin, "list", NULL};
    cr_assert_eq(qt_run(list, nowhere, 5000, &out, &err), 1);
    cr_assert(strstr(err, "no arbiter at /nonexistent/admin.sock"), "%s", err);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    free(out), free(err), free(env0), free(bin);
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, a_dead_arbiter_is_reported_at_once)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL);
    qt_arbiter_kill(arb, SIGKILL); /* its socket files stay behind */
    char *out, *err;
    uint64_t t0 = qt_now_ns();
    cr_assert_eq(qt_ctl(arb, &out, &err, "list", NULL), 1);
    cr_assert_lt((qt_now_ns() - t0) / 1000000, 2000, "no waiting for a timeout");
    cr_assert(strstr(err, "nothing listens on") && strstr(err, "not running"), "%s", err);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    free(out), free(err);
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, destroy_vm_removes_every_vgpu_of_that_vm_and_none_left_is_success)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    char *a = ctl_create_cli(arb, "job-1", "Q1"), *b = ctl_create_cli(arb, "job-1", "Q1");
    char *other = ctl_create_cli(arb, "job-10", "Q1");
    char *out = CTL_OK(arb, "destroy", "--vm", "job-1");
    char want[128];
    snprintf(want, sizeof want, "%s\n%s\n", a, b);
    cr_assert_str_eq(out, want, "the ids it destroyed, one a line");
    free(out);
    char *list = CTL_OK(arb, "list");
    cr_assert_null(strstr(list, "job-1 "), "%s", list);
    cr_assert(strstr(list, other), "a VM whose name only starts the same is kept: %s", list);
    out = CTL_OK(arb, "destroy", "--vm", "job-1");
    cr_assert_str_eq(out, "", "nothing left to destroy is success");
    free(out), free(list), free(a), free(b), free(other);
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, gc_destroys_the_vgpus_of_vms_not_live_and_keeps_live_young_and_busy_ones)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    char *live = ctl_create_cli(arb, "slurm-1", "Q1"), *dead = ctl_create_cli(arb, "slurm-2", "Q1");
    char *other = ctl_create_cli(arb, "web-2", "Q1");
    /* slurm-3 has a process attached: its job may still be ending */
    qv_client_t *c = ctl_client(arb);
    char busy[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "slurm-3", "Q1", busy, secret);
    qv_disconnect(&c);
    ctl_tenant_t *t = ctl_tenant_new(arb, busy, secret);
    cr_assert_eq(ctl_tenant_hello(t), 0);

    /* made this minute: kept by default, its job may be newer than the list */
    char *out, *err;
    cr_assert_eq(qt_ctl(arb, &out, &err, "gc", "--vm-prefix", "slurm-", "1", NULL), 0, "%s", err);
    cr_assert_str_eq(out, "");
    cr_assert(strstr(err, "qgpuctl: gc: kept") && strstr(err, "(slurm-2): made"), "%s", err);
    free(out), free(err);

    cr_assert_eq(qt_ctl(arb, &out, &err, "gc", "--vm-prefix", "slurm-", "--min-age", "0",
                        "--dry-run", "1", NULL),
                 0, "%s", err);
    char want[128];
    snprintf(want, sizeof want, "would destroy %s (slurm-2)\n", dead);
    cr_assert_str_eq(out, want);
    cr_assert(strstr(err, "(slurm-3): 1 process still uses it"), "%s", err);
    free(out), free(err);
    char *list = CTL_OK(arb, "list");
    cr_assert(strstr(list, dead), "--dry-run destroyed it: %s", list);
    free(list);

    out = CTL_OK(arb, "--json", "gc", "--vm-prefix", "slurm-", "--min-age", "0", "1");
    json_t *doc = parse(out);
    json_t *done = json_object_get(doc, "destroyed"), *kept = json_object_get(doc, "kept");
    cr_assert_eq(json_array_size(done), 1, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(done, 0), "id")), dead);
    cr_assert_eq(json_array_size(kept), 1, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(kept, 0), "vm")), "slurm-3");
    json_decref(doc);
    free(out);
    list = CTL_OK(arb, "list");
    cr_assert_null(strstr(list, dead), "%s", list);
    cr_assert(strstr(list, live) && strstr(list, busy) && strstr(list, other), "%s", list);
    free(list);
    ctl_tenant_destroy(&t);
    free(live), free(dead), free(other);
    qt_arbiter_destroy(&arb);
}

Test(qgpuctl, gc_without_a_prefix_or_the_live_names_is_bad_usage)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL);
    struct {
        const char *args[6];
        const char *words;
    } cases[] = {
        {{"gc", "1", "2"}, "gc needs --vm-prefix PREFIX"},
        {{"gc", "--vm-prefix", "slurm-"}, "gc needs the live names, or -"},
        {{"gc", "--vm-prefix", "slurm-", "--min-age", "soon", "1"}, "--min-age 'soon'"},
        {{"gc", "--vm-prefix", "slurm-", "--force", "1"}, "unknown option '--force'"},
        {{"destroy", "--vm"}, "destroy takes one vGPU id, or --vm NAME"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char **a = cases[i].args;
        char *out, *err;
        int rc = qt_ctl(arb, &out, &err, a[0], a[1], a[2], a[3], a[4], a[5], NULL);
        cr_assert_eq(rc, 2, "case %zu: %d %s", i, rc, err);
        cr_assert(strstr(err, cases[i].words), "case %zu: %s", i, err);
        cr_assert_eq(count_lines(err), 1, "case %zu: %s", i, err);
        free(out), free(err);
    }
    qt_arbiter_destroy(&arb);
}
