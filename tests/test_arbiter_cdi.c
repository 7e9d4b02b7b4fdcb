/* test_arbiter_cdi.c - the CDI specs a --tenant-dir arbiter keeps, one per vGPU (what
 * podman reads: tests/test_containers.c), and qgpuctl's cdi, run and env commands on it.
 * A real qarbiter on the simulated GPU, its CDI dir a private one; then cdi.c alone, on a
 * made-up host. */
#include "arbiter/cdi.h"
#include "proto/container.h"
#include "tests/handler_support.h"
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct cdi {
    qt_arbiter_t *arb;
    char tenant[512]; /* its --tenant-dir */
    char dir[512];    /* its --cdi-dir */
};

/* An arbiter with a tenant dir and a private CDI dir, plus up to three extra arguments
 * (NULL-terminated). */
static void start(struct cdi *c, ...)
{
    char *t = qt_tmpdir(), *d = qt_tmpdir();
    snprintf(c->tenant, sizeof c->tenant, "%s", t);
    snprintf(c->dir, sizeof c->dir, "%s", d);
    free(t);
    free(d);
    qt_sim_private(NULL);
    const char *args[8] = {"--tenant-dir", c->tenant, "--cdi-dir", c->dir};
    va_list ap;
    va_start(ap, c);
    for (int i = 4; i < 7 && (args[i] = va_arg(ap, const char *)); i++)
        ;
    va_end(ap);
    c->arb = qt_arbiter_start_args(NULL, NULL, args);
    cr_assert_not_null(c->arb, "qarbiter did not start");
}

static void create(struct cdi *c, const char *vm, char id[64])
{
    char *out = NULL, *err = NULL;
    cr_assert_eq(qt_ctl(c->arb, &out, &err, "create", "--vm", vm, "--profile", "Q1", NULL), 0, "%s",
                 err);
    snprintf(id, 64, "%.*s", (int)strcspn(out, "\n"), out);
    free(out);
    free(err);
}

static json_t *load_spec(const struct cdi *c, const char *id)
{
    char path[600];
    snprintf(path, sizeof path, "%s/qvgpu-%s.json", c->dir, id);
    json_error_t je;
    json_t *spec = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    cr_assert_not_null(spec, "%s: %s", path, je.text);
    return spec;
}

/* The device's containerEdits' member key (an array). */
static json_t *edits(json_t *spec, const char *key)
{
    json_t *dev = json_array_get(json_object_get(spec, "devices"), 0);
    return json_object_get(json_object_get(dev, "containerEdits"), key);
}

static bool has_env(json_t *spec, const char *entry)
{
    size_t i;
    json_t *e;
    json_array_foreach(edits(spec, "env"), i,
                       e) if (strcmp(json_string_value(e), entry) == 0) return true;
    return false;
}

/* The host path mounted at dest, or NULL. */
static const char *mount_of(json_t *spec, const char *dest)
{
    size_t i;
    json_t *m;
    json_array_foreach(edits(spec, "mounts"), i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "containerPath")), dest) == 0)
            return json_string_value(json_object_get(m, "hostPath"));
    }
    return NULL;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
    return st.st_mode & 07777;
}

/* `qgpuctl env ID`'s value of name, into out. */
static void env_value(const struct cdi *c, const char *id, const char *name, char *out, size_t cap)
{
    char *text = NULL, key[64];
    cr_assert_eq(qt_ctl(c->arb, &text, NULL, "env", id, NULL), 0);
    snprintf(key, sizeof key, "export %s='", name);
    const char *p = strstr(text, key);
    cr_assert_not_null(p, "%s", text);
    p += strlen(key);
    snprintf(out, cap, "%.*s", (int)strcspn(p, "'"), p);
    free(text);
}

Test(arbiter_cdi, a_vgpu_has_a_spec_from_its_creation_to_its_destruction)
{
    struct cdi c;
    start(&c, NULL);
    char id[64], secret[128], uuid[128], path[4200];
    create(&c, "web", id);
    env_value(&c, id, "QVGPU_SECRET", secret, sizeof secret);
    env_value(&c, id, "CUDA_VISIBLE_DEVICES", uuid, sizeof uuid);
    json_t *spec = load_spec(&c, id);
    snprintf(path, sizeof path, "%s/qvgpu-%s.json", c.dir, id);
    cr_assert_eq(mode_of(path), 0600, "the spec holds the secret");
    cr_assert_str_eq(json_string_value(json_object_get(spec, "cdiVersion")), "0.5.0");
    cr_assert_str_eq(json_string_value(json_object_get(spec, "kind")), "qvgpu.io/vgpu");
    cr_assert_null(json_object_get(spec, "annotations"), "0.5.0 has no annotations");
    json_t *dev = json_array_get(json_object_get(spec, "devices"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(dev, "name")), id);
    char entry[512];
    snprintf(entry, sizeof entry, "QVGPU_VGPU=%s", id);
    cr_assert(has_env(spec, entry));
    snprintf(entry, sizeof entry, "QVGPU_SECRET=%s", secret);
    cr_assert(has_env(spec, entry));
    snprintf(entry, sizeof entry, "CUDA_VISIBLE_DEVICES=%s", uuid);
    cr_assert(has_env(spec, entry));
    cr_assert(has_env(spec, "QVGPU_SOCKET_DIR=" QP_CTR_SOCKET_DIR));
    cr_assert(has_env(spec, "LD_PRELOAD=" QP_CTR_SHIM));
    /* Mounts: the tenant dir (never the socket dir), the credentials, the bundle. */
    cr_assert_str_eq(mount_of(spec, QP_CTR_SOCKET_DIR), c.tenant);
    const char *creds = mount_of(spec, QP_CTR_VGPU_FILE);
    cr_assert_not_null(creds);
    cr_assert_eq(mode_of(creds), 0444);
    cr_assert_eq(mode_of(creds) & 0077, 0044);
    char *dir = strdup(creds);
    *strrchr(dir, '/') = '\0';
    cr_assert_eq(mode_of(dir), 0700, "only root enters the credentials' directory");
    free(dir);
    FILE *f = fopen(creds, "r");
    char text[512] = "";
    cr_assert_gt(fread(text, 1, sizeof text - 1, f), 0);
    fclose(f);
    snprintf(entry, sizeof entry, "QVGPU_VGPU=%s\nQVGPU_SECRET=%s\nCUDA_VISIBLE_DEVICES=%s\n", id,
             secret, uuid);
    cr_assert_str_eq(text, entry);
    char *bundle = qt_build_path("bundle"), real[4096];
    cr_assert_not_null(realpath(bundle, real));
    cr_assert_str_eq(mount_of(spec, QP_CTR_BUNDLE_DIR), real);
    free(bundle);
    snprintf(path, sizeof path, "%s/%s", c.tenant, QP_CTR_VGPU_FILE_NAME);
    cr_assert_eq(mode_of(path), 0444, "the mount point of the credentials");
    /* The preflight hook, with an environment of its own. */
    json_t *hook = json_array_get(edits(spec, "hooks"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(hook, "hookName")), "createContainer");
    snprintf(path, sizeof path, "%s/qvgpu-container-hook", real);
    cr_assert_str_eq(json_string_value(json_object_get(hook, "path")), path);
    cr_assert_eq(json_array_size(json_object_get(hook, "env")), 1);
    json_decref(spec);
    /* Destroyed: both files go. */
    cr_assert_eq(qt_ctl(c.arb, NULL, NULL, "destroy", id, NULL), 0);
    snprintf(path, sizeof path, "%s/qvgpu-%s.json", c.dir, id);
    cr_assert_eq(access(path, F_OK), -1, "%s is still there", path);
    cr_assert_eq(access(creds, F_OK), -1);
    qt_arbiter_destroy(&c.arb);
}

/* Writes at path a spec of device name that mounts tenant at /run/qvgpu. */
static void spec_mounting(const char *path, const char *name, const char *tenant)
{
    json_t *spec = json_pack("{s:s, s:s, s:[{s:s, s:{s:[{s:s, s:s}]}}]}", "cdiVersion", "0.5.0",
                             "kind", "qvgpu.io/vgpu", "devices", "name", name, "containerEdits",
                             "mounts", "hostPath", tenant, "containerPath", "/run/qvgpu");
    cr_assert_eq(json_dump_file(spec, path, 0), 0);
    json_decref(spec);
}

Test(arbiter_cdi, specs_are_rewritten_at_start_and_stale_ones_of_ours_removed)
{
    struct cdi c;
    start(&c, NULL);
    char a[64], b[64], path[600];
    create(&c, "a", a);
    create(&c, "b", b);
    qt_arbiter_kill(c.arb, SIGTERM);
    snprintf(path, sizeof path, "%s/qvgpu-%s.json", c.dir, a);
    cr_assert_eq(unlink(path), 0);
    /* A spec of ours for a vGPU that is gone, and another arbiter's. */
    char stale[600], other[600];
    snprintf(stale, sizeof stale, "%s/qvgpu-vg-99.json", c.dir);
    snprintf(other, sizeof other, "%s/qvgpu-vg-98.json", c.dir);
    spec_mounting(stale, "vg-99", c.tenant);
    spec_mounting(other, "vg-98", "/elsewhere");
    cr_assert_eq(qt_arbiter_restart(c.arb), 0);
    cr_assert_eq(access(path, F_OK), 0, "the missing spec is written again");
    cr_assert_eq(access(stale, F_OK), -1, "a stale spec of ours is removed");
    cr_assert_eq(access(other, F_OK), 0, "another arbiter's spec is left alone");
    /* qgpuctl cdi sync does the same while it runs. */
    cr_assert_eq(unlink(path), 0);
    char *out = NULL;
    cr_assert_eq(qt_ctl(c.arb, &out, NULL, "cdi", "sync", NULL), 0);
    cr_assert_str_eq(out, "CDI specs: 2 written, 0 stale removed\n");
    cr_assert_eq(access(path, F_OK), 0);
    free(out);
    unlink(other);
    qt_arbiter_destroy(&c.arb);
}

Test(arbiter_cdi, qgpuctl_shows_a_spec_and_the_devices_to_ask_for)
{
    struct cdi c;
    start(&c, NULL);
    char id[64], uuid[128], want[512];
    create(&c, "web", id);
    env_value(&c, id, "CUDA_VISIBLE_DEVICES", uuid, sizeof uuid);
    char *out = NULL, *err = NULL;
    cr_assert_eq(qt_ctl(c.arb, &out, NULL, "cdi", "devices", id, NULL), 0);
    snprintf(want, sizeof want, "--device qvgpu.io/vgpu=%s --device nvidia.com/gpu=%s\n", id, uuid);
    cr_assert_str_eq(out, want);
    free(out);
    cr_assert_eq(qt_ctl(c.arb, &out, NULL, "cdi", "show", id, NULL), 0);
    json_error_t je;
    json_t *shown = json_loads(out, 0, &je), *spec = load_spec(&c, id);
    cr_assert_not_null(shown, "%s", je.text);
    cr_assert(json_equal(shown, spec), "show prints the file");
    json_decref(shown);
    json_decref(spec);
    free(out);
    cr_assert_eq(qt_ctl(c.arb, NULL, &err, "cdi", "show", "vg-77", NULL), 1);
    cr_assert(strstr(err, "vg-77"), "%s", err);
    cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "one line: %s", err);
    free(err);
    cr_assert_eq(qt_ctl(c.arb, NULL, &err, "cdi", "bogus", NULL), 2);
    free(err);
    qt_arbiter_destroy(&c.arb);
}

Test(arbiter_cdi, an_embedded_driver_and_the_preload_mode_change_the_edits)
{
    /* A driver root as a real host has it: libraries (here the simulated ones, behind
     * symlinks) under usr/lib/x86_64-linux-gnu. */
    char *root = qt_tmpdir(), lib[600], *sim = qt_build_path("sim/libcuda.so.1"), real[4096];
    snprintf(lib, sizeof lib, "%s/usr", root);
    mkdir(lib, 0755);
    snprintf(lib, sizeof lib, "%s/usr/lib", root);
    mkdir(lib, 0755);
    snprintf(lib, sizeof lib, "%s/usr/lib/x86_64-linux-gnu", root);
    mkdir(lib, 0755);
    snprintf(lib, sizeof lib, "%s/usr/lib/x86_64-linux-gnu/libcuda.so.1", root);
    cr_assert_eq(symlink(sim, lib), 0);
    cr_assert_not_null(realpath(sim, real));
    struct cdi c;
    start(&c, "--cdi-driver-root", root, "--cdi-preload", NULL);
    char id[64];
    create(&c, "web", id);
    json_t *spec = load_spec(&c, id);
    cr_assert_str_eq(mount_of(spec, "/usr/lib/x86_64-linux-gnu/libcuda.so.1"), real,
                     "the library itself is mounted where the symlink is");
    char bundle_preload[4200], *bundle = qt_build_path("bundle");
    cr_assert_not_null(realpath(bundle, bundle_preload));
    free(bundle);
    strcat(bundle_preload, "/ld.so.preload");
    cr_assert_str_eq(mount_of(spec, QP_CTR_LD_SO_PRELOAD), bundle_preload);
    size_t i;
    json_t *e;
    json_array_foreach(edits(spec, "env"), i, e)
        cr_assert(strncmp(json_string_value(e), "LD_PRELOAD=", 11) != 0,
                  "preload mode keeps the image's LD_PRELOAD");
    json_t *args_of_hook = json_object_get(json_array_get(edits(spec, "hooks"), 0), "args");
    cr_assert_str_eq(json_string_value(json_array_get(args_of_hook, 6)), "--preload");
    json_decref(spec);
    char *out = NULL, want[128];
    cr_assert_eq(qt_ctl(c.arb, &out, NULL, "cdi", "devices", id, NULL), 0);
    snprintf(want, sizeof want, "--device qvgpu.io/vgpu=%s\n", id);
    cr_assert_str_eq(out, want, "no NVIDIA device to ask for: the driver is in ours");
    free(out);
    qt_arbiter_destroy(&c.arb);
    free(sim);
    free(root);
}

Test(arbiter_cdi, specs_need_a_tenant_dir_of_its_own)
{
    char *bin = qt_build_path("qarbiter"), *dir = qt_tmpdir(), *err = NULL, sock[600], st[600];
    snprintf(sock, sizeof sock, "%s/sock", dir);
    snprintf(st, sizeof st, "%s/state", dir);
    const char *no_tenant[] = {bin, "--socket-dir", sock, "--state-dir",
                               st,  "--cdi-dir",    dir,  NULL};
    cr_assert_eq(qt_run(no_tenant, NULL, 5000, NULL, &err), 2);
    cr_assert(strstr(err, "--cdi-dir needs --tenant-dir"), "%s", err);
    cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "one line: %s", err);
    free(err);
    mkdir(sock, 0755);
    qt_sim_private(NULL);
    const char *same[] = {bin,  "--socket-dir", sock, "--state-dir", st, "--tenant-dir",
                          sock, "--cdi-dir",    dir,  NULL};
    cr_assert_eq(qt_run(same, NULL, 5000, NULL, &err), 1);
    cr_assert(strstr(err, "admin.sock"), "%s", err);
    free(err);
    free(bin);
    free(dir);
}

Test(arbiter_cdi, qgpuctl_cdi_on_an_arbiter_without_a_tenant_dir_says_why)
{
    qt_sim_private(NULL);
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    cr_assert_not_null(arb);
    char *err = NULL;
    cr_assert_eq(qt_ctl(arb, NULL, &err, "cdi", "sync", NULL), 1);
    cr_assert(strstr(err, "--tenant-dir"), "%s", err);
    free(err);
    qt_arbiter_destroy(&arb);
}

Test(arbiter_cdi, run_and_env_give_workloads_the_tenant_dir)
{
    struct cdi c;
    start(&c, NULL);
    char id[64], dir[600];
    create(&c, "web", id);
    env_value(&c, id, "QVGPU_SOCKET_DIR", dir, sizeof dir);
    cr_assert_str_eq(dir, c.tenant, "the tenant dir, not the socket dir without tenant.sock");
    /* A workload started with qgpuctl run joins its vGPU: it sees the quota, not 0. */
    char *ctl = qt_build_path("qgpuctl"), *prog = qt_build_path("tests/progs/shim_work");
    char *out = NULL, *err = NULL;
    const char *argv[] = {ctl,
                          "--socket-dir",
                          qt_arbiter_socket_dir(c.arb),
                          "run",
                          id,
                          "--",
                          prog,
                          "init",
                          "info:direct",
                          NULL};
    cr_assert_eq(qt_run(argv, NULL, 20000, &out, &err), 0, "%s", err);
    cr_assert_eq(qts_field(out, "info ", 2), 1024ll << 20, "%s\n%s", out, err);
    free(out);
    free(err);
    free(prog);
    free(ctl);
    qt_arbiter_destroy(&c.arb);
}

/* ---- cdi.c alone ------------------------------------------------------------------------
 * The specs of vGPUs of a made-up host, written into private dirs, without a daemon. */

struct alone {
    char *tenant, *cdi, *creds; /* owned */
    qa_config_t cfg;
    qa_host_t *host;
    qa_cdi_t *c;
};

static struct alone *alone_new(void)
{
    struct alone *a = calloc(1, sizeof *a);
    char err[QP_ERR_LEN], *bundle = qt_build_path("bundle");
    a->tenant = qt_tmpdir();
    a->cdi = qt_tmpdir();
    char *creds = qt_tmpdir();
    a->creds = qt_strf("%s/vgpus", creds);
    free(creds);
    qa_config_defaults(&a->cfg);
    a->host = qt_host(1, &a->cfg);
    qa_cdi_opts_t o = {a->cdi, bundle, NULL, false};
    a->c = qa_cdi_new(&o, a->tenant, a->creds, err);
    cr_assert_not_null(a->c, "%s", err);
    cr_assert_eq(mode_of(a->creds), 0700, "only root enters the credentials' dir");
    free(bundle);
    return a;
}

static void alone_free(struct alone *a)
{
    qa_cdi_destroy(&a->c);
    cr_assert_null(a->c);
    qa_host_destroy(&a->host);
    free(a->tenant), free(a->cdi), free(a->creds), free(a);
}

static qa_vgpu_t *made(struct alone *a, const char *vm)
{
    qa_spec_t s = {.vm = vm, .profile = "Q1", .gpu = 0};
    qa_vgpu_t *v;
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_host_create(a->host, &s, 0, &v, err), 0, "%s", err);
    return v;
}

Test(qa_cdi, a_spec_puts_a_container_into_its_vgpu_and_is_readable_by_root_only)
{
    struct alone *a = alone_new();
    qa_vgpu_t *v = made(a, "ctr");
    char err[QP_ERR_LEN], path[PATH_MAX], names[2][160];
    cr_assert_eq(qa_cdi_put(a->c, v, "GPU-0", err), 0, "%s", err);
    qa_cdi_path(a->c, v->id, path);
    cr_assert_eq(mode_of(path), 0600, "it holds the secret");
    json_error_t je;
    json_t *spec = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    cr_assert_not_null(spec, "%s", je.text);
    cr_assert_str_eq(json_string_value(json_object_get(spec, "cdiVersion")), "0.5.0");
    cr_assert_str_eq(json_string_value(json_object_get(spec, "kind")), "qvgpu.io/vgpu");
    char want[128];
    snprintf(want, sizeof want, "QVGPU_SECRET=%s", v->secret);
    cr_assert(has_env(spec, want));
    cr_assert(has_env(spec, "CUDA_VISIBLE_DEVICES=GPU-0"));
    cr_assert_str_eq(mount_of(spec, QP_CTR_SOCKET_DIR), a->tenant);
    json_decref(spec);
    char *creds = qt_strf("%s/%s", a->creds, v->id);
    cr_assert_eq(mode_of(creds), 0444, "readable once mounted");
    cr_assert_eq(qa_cdi_devices(a->c, v, "GPU-0", names), 2);
    cr_assert_str_eq(names[0], "qvgpu.io/vgpu=vg-1");
    cr_assert_str_eq(names[1], "nvidia.com/gpu=GPU-0");

    cr_assert_eq(qa_cdi_remove(a->c, v->id, err), 0, "%s", err);
    cr_assert_neq(access(path, F_OK), 0);
    cr_assert_neq(access(creds, F_OK), 0);
    cr_assert_eq(qa_cdi_remove(a->c, v->id, err), 0, "removing what is gone is no error");
    free(creds);
    alone_free(a);
}

Test(qa_cdi, a_sync_writes_every_vgpus_spec_and_removes_ours_of_vgpus_gone_only)
{
    struct alone *a = alone_new();
    char err[QP_ERR_LEN], path[PATH_MAX];
    qa_vgpu_t *v1 = made(a, "one");
    cr_assert_eq(qa_cdi_put(a->c, v1, "GPU-0", err), 0, "%s", err);
    free(qa_host_take(a->host, v1->id)); /* destroyed while its spec stayed */
    qa_vgpu_t *v2 = made(a, "two"), *v3 = made(a, "three");
    char *foreign = qt_strf("%s/qvgpu-vg-9.json", a->cdi); /* another arbiter's */
    FILE *f = fopen(foreign, "w");
    fputs("{\"devices\":[{\"containerEdits\":{\"mounts\":[{\"containerPath\":\"" QP_CTR_SOCKET_DIR
          "\",\"hostPath\":\"/elsewhere\"}]}}]}",
          f);
    fclose(f);
    unsigned written, removed;
    cr_assert_eq(qa_cdi_sync(a->c, a->host, &written, &removed, err), 0, "%s", err);
    cr_assert_eq(written, 2);
    cr_assert_geq(removed, 1, "vg-1's spec (and its credentials)");
    cr_assert_eq(access(qa_cdi_path(a->c, "vg-1", path), F_OK), -1);
    cr_assert_eq(access(qa_cdi_path(a->c, v2->id, path), F_OK), 0);
    cr_assert_eq(access(qa_cdi_path(a->c, v3->id, path), F_OK), 0);
    cr_assert_eq(access(foreign, F_OK), 0, "another arbiter's spec is left alone");
    free(foreign);
    alone_free(a);
}

Test(qa_cdi, a_bundle_without_the_shim_is_refused_in_one_line)
{
    char *tenant = qt_tmpdir(), *cdi = qt_tmpdir(), *empty = qt_tmpdir(), err[QP_ERR_LEN];
    char *creds = qt_strf("%s/vgpus", cdi);
    qa_cdi_opts_t o = {cdi, empty, NULL, false};
    cr_assert_null(qa_cdi_new(&o, tenant, creds, err));
    cr_assert(strstr(err, empty), "names the bundle: %s", err);
    cr_assert_null(strchr(err, '\n'));
    free(tenant), free(cdi), free(empty), free(creds);
}
