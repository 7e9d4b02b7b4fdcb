/* test_route.c - the whole route a CUDA runtime takes to the driver, inside a vGPU and
 * without the shim: every entry point of the toolkit's table through cuGetProcAddress and
 * cuGetProcAddress_v2 (CUDA 11.3, 12.0, 13.0; default, legacy and per-thread default
 * stream), and every exported variant through dlsym and dlvsym on a dlopen'ed driver,
 * for a program linked with the driver and for one that opens it late.
 *
 * The programs are tests/progs/route_probe and route_late. In a vGPU every answer must
 * be what the driver gives without the shim (the same status, the same function), except
 * that where the shim hooks the variant the driver chose, it is the shim's hook. On the
 * simulated driver, the driver's answer must also be exactly its own export of the
 * variant the toolkit's table names. On a real driver (QV_TEST_DRIVER=real) only the
 * comparison holds: its exports need not be what it hands out. */
#include "shim/procaddr.c"

#include <criterion/criterion.h>
#include <cuda.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/elf_support.h"
#include "tests/shim_support.h"

/* Runs prog (a tests/progs program) in env; returns its stdout (caller frees). */
static char *probe(const char *prog, const qts_env_t *e)
{
    char rel[64];
    snprintf(rel, sizeof rel, "tests/progs/%s", prog);
    char *bin = qt_build_path(rel);
    const char *argv[] = {bin, NULL};
    char *out = NULL, *err = NULL;
    int st = qt_run(argv, e->v, 60000, &out, &err);
    cr_assert_eq(st, 0, "%s exited with %d: %s", prog, st, err);
    free(err);
    free(bin);
    return out;
}

/* One answer of the probe: "<kind> <key...> <rc> <status> <object> <offset>", split. */
struct answer {
    char key[160];   /* what was asked: "pa 2 12000 0 cuMemAlloc", "dlsym cuMemAlloc_v2" */
    char name[96];   /* the name or symbol asked for */
    int api;         /* 1 or 2 for pa lines, 0 otherwise */
    int version;     /* pa lines */
    unsigned flags;  /* pa lines */
    int rc;          /* pa lines */
    char status[8];  /* pa lines: the query result, "-" for api 1 */
    char object[64]; /* the library holding the answer, "-" for NULL */
    long long offset;
};

static bool parse(const char *line, struct answer *a)
{
    memset(a, 0, sizeof *a);
    char kind[16];
    int used = 0;
    if (sscanf(line, "%15s", kind) != 1)
        return false;
    if (strcmp(kind, "pa") == 0) {
        if (sscanf(line, "pa %d %d %u %95s %d %7s %63s %llx%n", &a->api, &a->version, &a->flags,
                   a->name, &a->rc, a->status, a->object, (unsigned long long *)&a->offset,
                   &used) != 8)
            return false;
        snprintf(a->key, sizeof a->key, "pa %d %d %u %s", a->api, a->version, a->flags,
                 a->name);
        return true;
    }
    if (strcmp(kind, "dlsym") == 0 || strcmp(kind, "dlvsym") == 0) {
        if (sscanf(line, "%*s %95s %63s %llx", a->name, a->object,
                   (unsigned long long *)&a->offset) != 3)
            return false;
        snprintf(a->key, sizeof a->key, "%s %s", kind, a->name);
        return true;
    }
    return false;
}

/* Splits text into its lines (modifies text); returns how many. */
static size_t lines(char *text, char ***out)
{
    size_t n = 0, cap = 1024;
    char **v = malloc(cap * sizeof *v);
    cr_assert_not_null(v);
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (n == cap) {
            cap *= 2;
            v = realloc(v, cap * sizeof *v);
            cr_assert_not_null(v);
        }
        v[n++] = l;
    }
    *out = v;
    return n;
}

/* Mismatches found, the first few kept for the failure message. */
struct verdict {
    size_t checked;
    size_t wrong;
    char first[2048];
};

static void wrong(struct verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wrong(struct verdict *v, const char *fmt, ...)
{
    v->wrong++;
    if (v->wrong > 8)
        return;
    size_t used = strlen(v->first);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->first + used, sizeof v->first - used, fmt, ap);
    va_end(ap);
    used = strlen(v->first);
    snprintf(v->first + used, sizeof v->first - used, "\n");
}

/* The exported variant the driver should hand out for a's question: the procaddr
 * table's pick, or the symbol itself for dlsym and dlvsym. NULL: none (too new). */
static const char *variant_of(const struct answer *a)
{
    if (a->api == 0)
        return a->name;
    return qs_procaddr_variant(a->name, a->version,
                               (a->flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0);
}

/* Without the shim, on the simulated driver: the driver's own export of the variant. */
static void check_plain(struct verdict *v, const struct answer *a, const qt_elf_exports_t *sim)
{
    const char *want = variant_of(a);
    bool dlvsym = strncmp(a->key, "dlvsym", 6) == 0;
    if (dlvsym) {
        /* The driver's symbols carry no version: glibc's dlvsym finds none of them. */
        if (strcmp(a->object, "-") != 0)
            wrong(v, "%s: found in %s without the shim, glibc finds nothing", a->key, a->object);
        return;
    }
    if (!want) {
        if (a->rc != CUDA_ERROR_NOT_FOUND ||
            (a->api == 2 && atoi(a->status) != CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT))
            wrong(v, "%s: rc %d status %s, want %d (version not sufficient)", a->key, a->rc,
                  a->status, CUDA_ERROR_NOT_FOUND);
        return;
    }
    long long off = qt_elf_find(sim, want);
    if (a->rc != CUDA_SUCCESS || (a->api == 2 && atoi(a->status) != CU_GET_PROC_ADDRESS_SUCCESS))
        wrong(v, "%s: rc %d status %s without the shim, want %s", a->key, a->rc, a->status, want);
    else if (strcmp(a->object, "libcuda.so.1") != 0 || a->offset != off)
        wrong(v, "%s: %s+%llx without the shim, want the driver's %s (+%llx)", a->key, a->object,
              a->offset, want, off);
}

/* In the vGPU against without the shim: the same status, the same function unless the
 * shim hooks the variant, then the shim's hook. */
static void check_vgpu(struct verdict *v, const struct answer *in, const struct answer *out,
                       const qt_elf_exports_t *shim)
{
    if (in->rc != out->rc || strcmp(in->status, out->status) != 0) {
        wrong(v, "%s: rc %d status %s in the vGPU, rc %d status %s without the shim", in->key,
              in->rc, in->status, out->rc, out->status);
        return;
    }
    const char *var = variant_of(out);
    long long hook = var && strcmp(out->object, "-") != 0 ? qt_elf_find(shim, var) : -1;
    if (hook >= 0) {
        if (strcmp(in->object, "libqshim.so") != 0 || in->offset != hook)
            wrong(v, "%s: %s+%llx in the vGPU, want the shim's hook %s (+%llx)", in->key,
                  in->object, in->offset, var, hook);
    } else if (strcmp(in->object, out->object) != 0 || in->offset != out->offset) {
        wrong(v, "%s: %s+%llx in the vGPU, %s+%llx without the shim", in->key, in->object,
              in->offset, out->object, out->offset);
    }
}

/* Runs prog without the shim and in a vGPU of a real arbiter and checks every answer. */
static void check_route(const char *prog, int want_loaded)
{
    qt_sim_private(NULL);
    qt_arbiter_t *arb = qt_arbiter_start(NULL, NULL);
    cr_assert_not_null(arb);
    qts_vgpu_t vg;
    qts_vgpu_create(arb, &vg, "--vm", "route", "--profile", "Q2", NULL);
    qts_env_t plain, vgpu;
    qts_env_plain(&plain);
    qts_env_of(&vgpu, arb, &vg);
    char *out_plain = probe(prog, &plain);
    char *out_vgpu = probe(prog, &vgpu);
    qt_arbiter_destroy(&arb);

    qt_elf_exports_t sim = {0}, shim;
    bool simulated = qt_driver_simulated();
    if (simulated) {
        char *p = qt_build_path("sim/libcuda.so.1");
        qt_elf_exports(p, &sim);
        free(p);
    }
    char *p = qt_build_path("libqshim.so");
    qt_elf_exports(p, &shim);
    free(p);

    char **lp, **lv;
    size_t np = lines(out_plain, &lp), nv = lines(out_vgpu, &lv);
    cr_assert_eq(np, nv, "%zu answers without the shim, %zu in the vGPU", np, nv);
    char want[16];
    snprintf(want, sizeof want, "loaded %d", want_loaded);
    cr_assert_str_eq(lp[0], want, "%s: the driver was%s loaded at start", prog,
                     want_loaded ? " not" : "");
    cr_assert_str_eq(lv[0], want, "%s in the vGPU: the driver was%s loaded at start", prog,
                     want_loaded ? " not" : "");
    struct verdict v = {0};
    size_t pa = 0, sym = 0;
    for (size_t i = 1; i < np; i++) {
        struct answer a, b;
        cr_assert(parse(lp[i], &a), "unreadable line: %s", lp[i]);
        cr_assert(parse(lv[i], &b), "unreadable line: %s", lv[i]);
        cr_assert_str_eq(a.key, b.key, "the two runs asked in different orders");
        if (simulated)
            check_plain(&v, &a, &sim);
        check_vgpu(&v, &b, &a, &shim);
        v.checked++;
        pa += a.api != 0;
        sym += a.api == 0;
    }
    /* Every name in 18 ways, every variant twice: nothing was skipped. */
    size_t names = 0;
    for (size_t i = 0; i < QV_PROCADDR_COUNT; i++)
        names += i == 0 || strcmp(qv_procaddr_table[i].name, qv_procaddr_table[i - 1].name) != 0;
    cr_assert_eq(pa, names * 18, "%zu procaddr answers for %zu names", pa, names);
    cr_assert_eq(sym, QV_PROCADDR_COUNT * 2);
    cr_assert_eq(v.wrong, 0, "%s: %zu of %zu answers wrong; the first:\n%s", prog, v.wrong,
                 v.checked, v.first);
    free(lp);
    free(lv);
    free(out_plain);
    free(out_vgpu);
    qt_elf_exports_free(&shim);
    if (simulated)
        qt_elf_exports_free(&sim);
}

Test(route, a_linked_program_resolves_every_entry_point_in_a_vgpu_as_without_the_shim,
     .timeout = 120)
{
    check_route("route_probe", 1);
}

Test(route, a_program_opening_the_driver_late_resolves_every_entry_point_alike, .timeout = 120)
{
    check_route("route_late", 0);
}
