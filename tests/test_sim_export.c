/* test_sim_export.c - the simulated driver's private interface to the CUDA runtime
 * (cuGetExportTable): the tables the runtime asks for at its start, each slot it calls
 * doing what the runtime needs. tests/test_cudart.c checks the whole with the runtime
 * itself; this file pins each piece down. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "sim/md2.c"
#include "tests/sim_support.h"

static const CUuuid runtime_id = {{(char)0x6b, (char)0xd5, (char)0xfb, (char)0x6c, (char)0x5b,
                                   (char)0xf4, (char)0xe7, (char)0x4a, (char)0x89, (char)0x87,
                                   (char)0xd9, (char)0x39, (char)0x12, (char)0xfd, (char)0x9d,
                                   (char)0xf9}};
static const CUuuid tools_id = {{(char)0xa0, (char)0x94, (char)0x79, (char)0x8c, (char)0x2e,
                                 (char)0x74, (char)0x2e, (char)0x74, (char)0x93, (char)0xf2,
                                 (char)0x08, (char)0x00, (char)0x20, (char)0x0c, (char)0x0a,
                                 (char)0x66}};
static const CUuuid tls_id = {{(char)0x42, (char)0xd8, (char)0x5a, (char)0x81, (char)0x23,
                               (char)0xf6, (char)0xcb, (char)0x47, (char)0x82, (char)0x98,
                               (char)0xf6, (char)0xe7, (char)0x8a, (char)0x3a, (char)0xec,
                               (char)0xdc}};
static const CUuuid cls_id = {{(char)0xc6, (char)0x93, (char)0x33, (char)0x6e, (char)0x11,
                               (char)0x21, (char)0xdf, (char)0x11, (char)0xa8, (char)0xc3,
                               (char)0x68, (char)0xf3, (char)0x55, (char)0xd8, (char)0x95,
                               (char)0x93}};
static const CUuuid check_id = {{(char)0x26, (char)0x3e, (char)0x88, (char)0x60, (char)0x7c,
                                 (char)0xd2, (char)0x61, (char)0x43, (char)0x92, (char)0xf6,
                                 (char)0xbb, (char)0xd5, (char)0x00, (char)0x6d, (char)0xfa,
                                 (char)0x7e}};
static const CUuuid integrity_id = {{(char)0xd4, (char)0x08, (char)0x20, (char)0x55, (char)0xbd,
                                     (char)0xe6, (char)0x70, (char)0x4b, (char)0x8d, (char)0x34,
                                     (char)0xba, (char)0x12, (char)0x3c, (char)0x66, (char)0xe1,
                                     (char)0xf2}};

static const void *const *table(const CUuuid *id)
{
    const void *t = NULL;
    CU_OK(cuGetExportTable(&t, id));
    cr_assert_not_null(t);
    return t;
}

typedef CUresult (*primary_fn)(CUcontext *, CUdevice);
typedef CUresult (*module_fn)(CUmodule *, const void *);
typedef CUresult (*module_ext_fn)(CUmodule *, const void *, void *, void *, unsigned);
typedef void (*cls_dtor)(CUcontext, void *, void *);
typedef CUresult (*cls_put_fn)(CUcontext, void *, void *, cls_dtor);
typedef CUresult (*cls_delete_fn)(CUcontext, void *);
typedef CUresult (*cls_get_fn)(void **, CUcontext, void *);
typedef CUresult (*integrity_fn)(uint32_t, uint64_t, uint64_t[2]);
typedef CUresult (*check_fn)(CUcontext, uint32_t *, void **);
typedef void (*buffer_fn)(void **, size_t *);

Test(sim_export, the_runtime_finds_its_tables_before_cuInit_and_nothing_else)
{
    qt_sim_private(NULL);
    /* Sizes in bytes in the first slot, where the table has one. */
    cr_assert_eq((uintptr_t)table(&runtime_id)[0], 13 * sizeof(void *));
    cr_assert_eq((uintptr_t)table(&tools_id)[0], 7 * sizeof(void *));
    cr_assert_eq((uintptr_t)table(&tls_id)[0], 4 * sizeof(void *));
    cr_assert_eq((uintptr_t)table(&check_id)[0], 4 * sizeof(void *));
    cr_assert_eq((uintptr_t)table(&integrity_id)[0], 3 * sizeof(void *));
    cr_assert_not_null(table(&cls_id)[0], "the storage table starts with a function");
    /* The id the runtime asks for first, and carries on without. */
    CUuuid other = runtime_id;
    other.bytes[0] = (char)0xf8;
    const void *t = (const void *)1;
    cr_assert_eq(cuGetExportTable(&t, &other), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuGetExportTable(NULL, &runtime_id), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuGetExportTable(&t, NULL), CUDA_ERROR_INVALID_VALUE);
}

Test(sim_export, the_tool_buffers_are_memory_the_runtime_may_write)
{
    qt_sim_private(NULL);
    void *buf = NULL;
    size_t n = 0;
    ((buffer_fn)table(&tools_id)[2])(&buf, &n);
    cr_assert_not_null(buf);
    cr_assert_eq(n, 1024);
    memset(buf, 0xab, n * sizeof(uint32_t));
    ((buffer_fn)table(&tools_id)[6])(&buf, &n);
    cr_assert_eq(n, 14);
    memset(buf, 0xab, n * sizeof(uint32_t));
}

Test(sim_export, the_primary_context_handle_comes_alive_when_made_current)
{
    qt_sim_private(NULL);
    CU_OK(cuInit(0));
    CUcontext ctx = NULL;
    primary_fn primary = (primary_fn)table(&runtime_id)[2];
    CU_OK(primary(&ctx, 0));
    cr_assert_not_null(ctx);
    unsigned flags;
    int active = -1;
    CU_OK(cuDevicePrimaryCtxGetState(0, &flags, &active));
    cr_assert_eq(active, 0, "handing out the handle retains nothing");
    /* The runtime makes it current without retaining it: it comes to life. */
    CU_OK(cuCtxSetCurrent(ctx));
    CU_OK(cuDevicePrimaryCtxGetState(0, &flags, &active));
    cr_assert_eq(active, 1);
    void *p = NULL;
    CU_OK(cuMemAlloc((CUdeviceptr *)&p, 1 << 20));
    CUcontext retained;
    CU_OK(cuDevicePrimaryCtxRetain(&retained, 0));
    cr_assert_eq(retained, ctx, "the same handle the documented API gives");
    cr_assert_eq(primary(&ctx, 1), CUDA_ERROR_INVALID_DEVICE);
    cr_assert_eq(primary(NULL, 0), CUDA_ERROR_INVALID_VALUE);
    /* A created context, once destroyed, does not come back that way. */
    CUcontext made;
    CU_OK(cuCtxCreate(&made, NULL, 0, 0));
    CU_OK(cuCtxDestroy(made));
    cr_assert_eq(cuCtxSetCurrent(made), CUDA_ERROR_INVALID_CONTEXT);
}

/* What the destructors saw. */
static struct {
    int calls;
    CUcontext ctx;
    void *key, *value;
    CUresult inner; /* a driver call made from inside the destructor */
} seen;

static void destructor(CUcontext ctx, void *key, void *value)
{
    seen.calls++;
    seen.ctx = ctx;
    seen.key = key;
    seen.value = value;
    CUcontext cur;
    seen.inner = cuCtxGetCurrent(&cur);
}

Test(sim_export, context_storage_keeps_values_per_context_and_runs_destructors_when_it_ends)
{
    qt_sim_private(NULL);
    CU_OK(cuInit(0));
    cls_put_fn put = (cls_put_fn)table(&cls_id)[0];
    cls_delete_fn del = (cls_delete_fn)table(&cls_id)[1];
    cls_get_fn get = (cls_get_fn)table(&cls_id)[2];
    int key, other_key, value, value2;
    void *got = NULL;
    cr_assert_eq(get(&got, NULL, &key), CUDA_ERROR_INVALID_CONTEXT, "no current context");

    CUcontext a, b;
    CU_OK(cuCtxCreate(&a, NULL, 0, 0));
    CU_OK(cuCtxCreate(&b, NULL, 0, 0)); /* b is current */
    CU_OK(put(a, &key, &value, destructor));
    CU_OK(put(NULL, &key, &value2, destructor)); /* NULL: the current context, b */
    CU_OK(get(&got, a, &key));
    cr_assert_eq(got, &value);
    CU_OK(get(&got, NULL, &key));
    cr_assert_eq(got, &value2);
    cr_assert_eq(get(&got, a, &other_key), CUDA_ERROR_INVALID_HANDLE, "nothing stored");
    /* Put again replaces; delete removes (and deleting nothing is no error). */
    CU_OK(put(b, &key, &value, destructor));
    CU_OK(get(&got, b, &key));
    cr_assert_eq(got, &value);
    CU_OK(del(b, &key));
    cr_assert_eq(get(&got, b, &key), CUDA_ERROR_INVALID_HANDLE);
    CU_OK(del(b, &key));

    /* Destroying a runs its destructor once, outside the driver's lock. */
    CU_OK(cuCtxDestroy(a));
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(seen.ctx, a);
    cr_assert_eq(seen.key, &key);
    cr_assert_eq(seen.value, &value);
    cr_assert_eq(seen.inner, CUDA_SUCCESS);
    cr_assert_eq(get(&got, a, &key), CUDA_ERROR_INVALID_CONTEXT);
    CU_OK(cuCtxDestroy(b));
    cr_assert_eq(seen.calls, 1, "b's entry was deleted: no destructor");

    /* A primary context's entries end with its reset, as the runtime's cudaDeviceReset. */
    CUcontext p = sim_up(0);
    CU_OK(put(p, &key, &value2, destructor));
    CU_OK(cuDevicePrimaryCtxReset(0));
    cr_assert_eq(seen.calls, 2);
    cr_assert_eq(seen.ctx, p);
    cr_assert_eq(seen.value, &value2);
    CUcontext cur;
    CU_OK(cuCtxGetCurrent(&cur));
    cr_assert_eq(get(&got, p, &key), CUDA_ERROR_INVALID_HANDLE, "a fresh context, nothing kept");
}

Test(sim_export, context_checks_report_nothing)
{
    qt_sim_private(NULL);
    CUcontext ctx = sim_up(0);
    uint32_t flags = 77;
    void *detail = NULL;
    CU_OK(((check_fn)table(&check_id)[2])(ctx, &flags, &detail));
    cr_assert_eq(flags, 0);
    cr_assert_eq(((uint32_t(*)(void))table(&check_id)[3])(), 0);
}

/* The digest by the documented recipe (sim/README.md), computed here independently. */
static void expected_digest(uint32_t version, uint64_t secs, uint8_t out[16])
{
    static const uint8_t key[16] = {0x14, 0x6a, 0xdd, 0xae, 0x53, 0xa9, 0xa7, 0x52,
                                    0xaa, 0x08, 0x41, 0x36, 0x0b, 0xf5, 0x5a, 0x9f};
    const void *const *integ = table(&integrity_id);
    struct {
        uint32_t drv, ver, pid, tid;
        const void *rt, *it, *fn;
        uint64_t secs;
    } head = {13000,     version,   (uint32_t)getpid(), (uint32_t)pthread_self(),
              table(&runtime_id), integ, integ[1], secs};
    struct {
        CUuuid uuid;
        int32_t domain, bus, device;
    } dev[2];
    int n = 0;
    CU_OK(cuDeviceGetCount(&n));
    cr_assert_eq(n, 2);
    for (int d = 0; d < n; d++) {
        CU_OK(cuDeviceGetUuid_v2(&dev[d].uuid, d));
        CU_OK(cuDeviceGetAttribute(&dev[d].domain, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, d));
        CU_OK(cuDeviceGetAttribute(&dev[d].bus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, d));
        CU_OK(cuDeviceGetAttribute(&dev[d].device, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, d));
    }
    const void *parts[] = {&head, dev};
    const size_t lens[] = {sizeof head, sizeof dev};
    qsim_hmac_md2(key, parts, lens, 2, out);
}

Test(sim_export, the_integrity_check_answers_as_the_runtime_verifies)
{
    qt_sim_private("NVIDIA A100-SXM4-40GB:40GiB:108,NVIDIA A100-SXM4-40GB:40GiB:108");
    CU_OK(cuInit(0));
    integrity_fn check = (integrity_fn)table(&integrity_id)[1];
    uint64_t got[2];
    CU_OK(check(13000, 1800000000ull, got));
    cr_assert(got[0] == 0x3341181c03cb675cull && got[1] == 0x8ed383aa1f4cd1e8ull);
    CU_OK(check(13001, 1800000000ull, got));
    cr_assert(got[0] == 0x1841181c03cb675cull && got[1] == 0x8ed383aa1f4cd1e8ull);
    uint8_t want[16];
    CU_OK(check(13002, 1800000000ull, got));
    expected_digest(13002, 1800000000ull, want);
    cr_assert_arr_eq(got, want, 16);
    uint64_t later[2];
    CU_OK(check(13002, 1800000001ull, later));
    cr_assert(memcmp(got, later, 16) != 0, "the time is part of it");
    cr_assert_eq(check(13002, 1, NULL), CUDA_ERROR_INVALID_VALUE);
}

Test(sim_export, modules_from_a_fatbinary_run_like_any_other)
{
    qt_sim_private(NULL);
    sim_up(0);
    /* A fatbinary header (magic 0xba55ed50, version 1, header size 16) and nvcc's
     * wrapper around it (magic 0x466243b1, version 1). */
    static const uint64_t fatbin[4] = {0x0010000100000000ull | 0xba55ed50u, 16, 0, 0};
    struct {
        uint32_t magic, version;
        const void *data, *rest;
    } wrapper = {0x466243b1u, 1, fatbin, NULL};
    module_fn load = (module_fn)table(&runtime_id)[1];
    CUmodule mod;
    CU_OK(load(&mod, &wrapper));
    CUfunction f;
    CU_OK(cuModuleGetFunction(&f, mod, "qsim_spin"));
    float ms = sim_spin_ms(f, NULL, 20000000ull);
    cr_assert(ms >= 19.99f, "%f ms", ms);
    /* What is not a wrapper around a fatbinary is no image. */
    wrapper.magic = 0;
    cr_assert_eq(load(&mod, &wrapper), CUDA_ERROR_INVALID_IMAGE);
    wrapper.magic = 0x466243b1u;
    wrapper.data = "text";
    cr_assert_eq(load(&mod, &wrapper), CUDA_ERROR_INVALID_IMAGE);
    wrapper.data = fatbin;
    /* The variants with arguments of unknown meaning accept only their neutral values. */
    module_ext_fn ext = (module_ext_fn)table(&runtime_id)[6];
    CU_OK(ext(&mod, &wrapper, NULL, NULL, 0));
    cr_assert_eq(ext(&mod, &wrapper, &wrapper, NULL, 0), CUDA_ERROR_NOT_SUPPORTED);
    CUresult (*from_fatbin)(const void *, CUmodule *, void *, void *, unsigned) =
        (CUresult(*)(const void *, CUmodule *, void *, void *, unsigned))table(&runtime_id)[8];
    CU_OK(from_fatbin(fatbin, &mod, NULL, NULL, 0));
    CU_OK(cuCtxSetCurrent(NULL));
    cr_assert_eq(load(&mod, &wrapper), CUDA_ERROR_INVALID_CONTEXT);
}
