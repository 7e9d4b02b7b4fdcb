/* cuda_export.c - cuGetExportTable: the private interface through which the CUDA runtime
 * (libcudart, linked statically by nvcc's default) reaches the driver beside the
 * documented API. A table is an array of pointers found by a 16-byte id; most start
 * with their own size in bytes. Nothing here is documented by NVIDIA: what each slot
 * does is known from public reverse-engineering work (ZLUDA's dark_api, see
 * sim/README.md) and from observing what the CUDA 13.0 runtime asks and passes. Slots
 * whose use is unknown are NULL, as in ZLUDA, which runs the same runtimes.
 *
 * What the runtime needs, in the order it asks at its start:
 *   - the runtime interface: the primary context's handle, modules from fatbinaries;
 *   - the tools' callback buffers and thread-local area (the runtime writes, the
 *     driver never reads them: tools are not simulated);
 *   - context-local storage, where it keeps its state per context, and whose
 *     destructors the driver runs when a context ends;
 *   - context checks, answered "nothing to report";
 *   - the integrity check: an HMAC-MD2 the runtime verifies before it does anything
 *     (otherwise every call fails with cudaErrorSoftwareValidityNotEstablished).
 * Any other id is CUDA_ERROR_INVALID_VALUE (the runtime asks for one more first and
 * carries on without it).
 * Threads: any. The storage is under qsim_g.lock; the tables are constant. */
#include "sim/cuda_export.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/cuda_ctx.h"
#include "sim/cuda_exec.h"
#include "sim/md2.h"

/* Tables that start with their size hold it in their first slot. */
#define TABLE_SIZE(n) ((const void *)(uintptr_t)((n) * sizeof(void *)))

/* ---- the runtime interface --------------------------------------------------------- */

/* The wrapper nvcc emits around each fatbinary (__fatBinC_Wrapper_t): magic 0x466243b1,
 * version 1 or 2, then the fatbinary, which starts with magic 0xba55ed50. */
struct fatbinc_wrapper {
    uint32_t magic;
    uint32_t version;
    const void *data;
    const void *filename_or_fatbins;
};
#define FATBINC_MAGIC 0x466243b1u
#define FATBIN_MAGIC 0xba55ed50u

static bool fatbin_ok(const void *fatbin)
{
    uint32_t magic;
    if (!fatbin)
        return false;
    memcpy(&magic, fatbin, sizeof magic);
    return magic == FATBIN_MAGIC;
}

/* A module from a fatbinary, in the current context. */
static CUresult module_from_fatbin(CUmodule *out, const void *fatbin)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    if (!fatbin_ok(fatbin))
        return CUDA_ERROR_INVALID_IMAGE;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    return rc == CUDA_SUCCESS ? qsim_module_new(ctx, out) : rc;
}

static CUresult module_from_wrapper(CUmodule *out, const struct fatbinc_wrapper *w)
{
    if (!w)
        return CUDA_ERROR_INVALID_VALUE;
    if (w->magic != FATBINC_MAGIC || (w->version != 1 && w->version != 2))
        return CUDA_ERROR_INVALID_IMAGE;
    return module_from_fatbin(out, w->data);
}

static CUresult rt_module(CUmodule *out, const struct fatbinc_wrapper *w)
{
    QSIM_GUARDED(module_from_wrapper(out, w));
}

/* The same with three more arguments whose meaning is unknown; ZLUDA refuses any but
 * NULL, NULL, 0, and so does the simulator rather than guess. */
static CUresult rt_module_ext(CUmodule *out, const struct fatbinc_wrapper *w, void *a, void *b,
                              unsigned c)
{
    if (a || b || c)
        return CUDA_ERROR_NOT_SUPPORTED;
    QSIM_GUARDED(module_from_wrapper(out, w));
}

static CUresult rt_module_fatbin(const void *fatbin, CUmodule *out, void *a, void *b, unsigned c)
{
    if (a || b || c)
        return CUDA_ERROR_NOT_SUPPORTED;
    QSIM_GUARDED(module_from_fatbin(out, fatbin));
}

/* The handle of dev's primary context without retaining it: the runtime makes it
 * current, which brings it to life (cuda_ctx.c). */
static CUresult primary_handle(CUcontext *out, CUdevice dev)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = qsim_check_device(dev);
    if (rc != CUDA_SUCCESS)
        return rc;
    struct qsim_ctx *c = qsim_primary_object(dev);
    if (!c)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *out = (CUcontext)c;
    return CUDA_SUCCESS;
}

static CUresult rt_primary(CUcontext *out, CUdevice dev)
{
    QSIM_GUARDED(primary_handle(out, dev));
}

/* Called by the runtime with one integer; nothing observable follows from it. */
static void rt_note(uintptr_t what)
{
    (void)what;
}

/* Loads the JIT compilers on the real driver; the simulator compiles nothing. */
static CUresult rt_load_compilers(void)
{
    return CUDA_SUCCESS;
}

static const void *const runtime_table[13] = {
    TABLE_SIZE(13),   (const void *)rt_module, (const void *)rt_primary,
    NULL,             NULL,                    NULL,
    (const void *)rt_module_ext, (const void *)rt_note, (const void *)rt_module_fatbin,
    NULL,             NULL,                    NULL,
    (const void *)rt_load_compilers};

/* ---- tools: buffers the runtime's callbacks live in ------------------------------- */

static void tools_hooks(void **buf, size_t *n)
{
    *buf = qsim_g.rt_hooks;
    *n = sizeof qsim_g.rt_hooks / sizeof *qsim_g.rt_hooks;
}

static void tools_hooks2(void **buf, size_t *n)
{
    *buf = qsim_g.rt_hooks2;
    *n = sizeof qsim_g.rt_hooks2 / sizeof *qsim_g.rt_hooks2;
}

static const void *const tools_callback_table[7] = {
    TABLE_SIZE(7), NULL, (const void *)tools_hooks, NULL, NULL, NULL, (const void *)tools_hooks2};

static const void *const tools_tls_table[4] = {TABLE_SIZE(4), NULL, NULL, NULL};

/* ---- context-local storage --------------------------------------------------------- */

typedef void (*cls_destructor)(CUcontext ctx, void *key, void *value);

/* One value the runtime keeps for a context. */
struct qsim_cls {
    struct qsim_ctx *ctx;  /* its context; NULL once that stopped (destructor pending) */
    CUcontext handle;      /* what the destructor is given */
    void *key, *value;
    cls_destructor dtor;   /* may be NULL */
    struct qsim_cls *next; /* qsim_g.cls */
};

/* The live context named by h, the current one for NULL. */
static CUresult cls_context(CUcontext h, struct qsim_ctx **out)
{
    if (!h)
        return qsim_ctx_get(out);
    struct qsim_ctx *c = qsim_ctx_of(h);
    if (!c)
        return CUDA_ERROR_INVALID_CONTEXT;
    *out = c;
    return CUDA_SUCCESS;
}

/* The entry for (ctx, key). Caller holds qsim_g.lock. */
static struct qsim_cls **cls_find_locked(struct qsim_ctx *ctx, void *key)
{
    struct qsim_cls **p = &qsim_g.cls;
    while (*p && !((*p)->ctx == ctx && (*p)->key == key))
        p = &(*p)->next;
    return p;
}

static CUresult cls_put(CUcontext h, void *key, void *value, cls_destructor dtor)
{
    struct qsim_ctx *ctx;
    CUresult rc = cls_context(h, &ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_cls *e = *cls_find_locked(ctx, key);
    if (!e && (e = calloc(1, sizeof *e))) {
        e->ctx = ctx;
        e->key = key;
        e->next = qsim_g.cls;
        qsim_g.cls = e;
    }
    if (e) {
        e->handle = (CUcontext)ctx;
        e->value = value;
        e->dtor = dtor;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    return e ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

/* Deleting what is not there succeeds, as in ZLUDA. */
static CUresult cls_delete(CUcontext h, void *key)
{
    struct qsim_ctx *ctx;
    CUresult rc = cls_context(h, &ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_cls **p = cls_find_locked(ctx, key), *e = *p;
    if (e)
        *p = e->next;
    pthread_mutex_unlock(&qsim_g.lock);
    free(e);
    return CUDA_SUCCESS;
}

/* CUDA_ERROR_INVALID_HANDLE when nothing is stored: the runtime then sets itself up. */
static CUresult cls_get(void **value, CUcontext h, void *key)
{
    if (!value)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_ctx *ctx;
    CUresult rc = cls_context(h, &ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_cls *e = *cls_find_locked(ctx, key);
    if (e)
        *value = e->value;
    pthread_mutex_unlock(&qsim_g.lock);
    return e ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

static CUresult rt_cls_put(CUcontext h, void *key, void *value, cls_destructor dtor)
{
    QSIM_GUARDED(cls_put(h, key, value, dtor));
}

static CUresult rt_cls_delete(CUcontext h, void *key)
{
    QSIM_GUARDED(cls_delete(h, key));
}

static CUresult rt_cls_get(void **value, CUcontext h, void *key)
{
    QSIM_GUARDED(cls_get(value, h, key));
}

/* No size slot in this one. */
static const void *const cls_table[4] = {(const void *)rt_cls_put, (const void *)rt_cls_delete,
                                         (const void *)rt_cls_get, NULL};

void qsim_cls_ctx_stopped_locked(struct qsim_ctx *ctx)
{
    for (struct qsim_cls *e = qsim_g.cls; e; e = e->next)
        if (e->ctx == ctx)
            e->ctx = NULL;
}

void qsim_cls_run_destructors(void)
{
    struct qsim_cls *run = NULL;
    pthread_mutex_lock(&qsim_g.lock);
    for (struct qsim_cls **p = &qsim_g.cls; *p;) {
        struct qsim_cls *e = *p;
        if (e->ctx) {
            p = &e->next;
            continue;
        }
        *p = e->next;
        e->next = run;
        run = e;
    }
    pthread_mutex_unlock(&qsim_g.lock);
    while (run) {
        struct qsim_cls *next = run->next;
        if (run->dtor)
            run->dtor(run->handle, run->key, run->value);
        free(run);
        run = next;
    }
}

/* ---- context checks ---------------------------------------------------------------- */

/* Asked about the current context before the runtime uses it: nothing to report. */
static CUresult ctx_check(CUcontext ctx, uint32_t *flags, void **detail)
{
    (void)ctx, (void)detail;
    if (flags)
        *flags = 0;
    return CUDA_SUCCESS;
}

static uint32_t ctx_check_global(void)
{
    return 0;
}

static const void *const ctx_check_table[4] = {TABLE_SIZE(4), NULL, (const void *)ctx_check,
                                               (const void *)ctx_check_global};

/* ---- the integrity check ----------------------------------------------------------- */

static CUresult integrity(uint32_t version, uint64_t unix_seconds, uint64_t out[2]);

static const void *const integrity_table[3] = {TABLE_SIZE(3), (const void *)integrity, NULL};

/* The runtime asks three times, with its version (13000 for CUDA 13.0) plus 0, 1 and 2
 * and the time, and compares with what it computes itself. For the last digit 0 and 1
 * the answer is a constant; otherwise it is HMAC-MD2, under a fixed key, of the driver
 * version, the request, the process and thread, the addresses of the runtime and
 * integrity tables and of this function, and the time, followed by each device's UUID
 * and PCI domain, bus and device (the layout ZLUDA documents). */
static CUresult integrity_hash(uint32_t version, uint64_t unix_seconds, uint64_t out[2])
{
    static const uint64_t fixed[2][2] = {{0x3341181c03cb675cull, 0x8ed383aa1f4cd1e8ull},
                                         {0x1841181c03cb675cull, 0x8ed383aa1f4cd1e8ull}};
    static const uint8_t key[QSIM_MD2_LEN] = {0x14, 0x6a, 0xdd, 0xae, 0x53, 0xa9, 0xa7, 0x52,
                                              0xaa, 0x08, 0x41, 0x36, 0x0b, 0xf5, 0x5a, 0x9f};
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    if (version % 10 < 2) {
        memcpy(out, fixed[version % 10], sizeof fixed[0]);
        return CUDA_SUCCESS;
    }
    struct {
        uint32_t driver_version, version, pid, thread;
        const void *runtime_table, *integrity_table, *function;
        uint64_t unix_seconds;
    } head = {QSIM_DRIVER_VERSION,
              version,
              (uint32_t)getpid(),
              (uint32_t)pthread_self(), /* truncated, as the runtime does */
              runtime_table,
              integrity_table,
              integrity_table[1],
              unix_seconds};
    struct {
        CUuuid uuid;
        int32_t domain, bus, device;
    } dev[QSIM_MAX_DEVICES];
    memset(dev, 0, sizeof dev);
    for (int d = 0; d < qsim_g.ndev; d++) {
        memcpy(dev[d].uuid.bytes, qsim_dev_of(d)->uuid, sizeof dev[d].uuid.bytes);
        if (qsim_device_attribute(&dev[d].domain, CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, d) ||
            qsim_device_attribute(&dev[d].bus, CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, d) ||
            qsim_device_attribute(&dev[d].device, CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, d))
            return CUDA_ERROR_UNKNOWN;
    }
    const void *parts[] = {&head, dev};
    const size_t lens[] = {sizeof head, (size_t)qsim_g.ndev * sizeof dev[0]};
    uint8_t digest[QSIM_MD2_LEN];
    qsim_hmac_md2(key, parts, lens, 2, digest);
    memcpy(out, digest, sizeof digest);
    return CUDA_SUCCESS;
}

static CUresult integrity(uint32_t version, uint64_t unix_seconds, uint64_t out[2])
{
    QSIM_GUARDED(integrity_hash(version, unix_seconds, out));
}

/* ---- the lookup -------------------------------------------------------------------- */

static const struct {
    uint8_t id[16];
    const void *const *table;
} tables[] = {
    {{0x6b, 0xd5, 0xfb, 0x6c, 0x5b, 0xf4, 0xe7, 0x4a, 0x89, 0x87, 0xd9, 0x39, 0x12, 0xfd, 0x9d,
      0xf9},
     runtime_table},
    {{0xa0, 0x94, 0x79, 0x8c, 0x2e, 0x74, 0x2e, 0x74, 0x93, 0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a,
      0x66},
     tools_callback_table},
    {{0x42, 0xd8, 0x5a, 0x81, 0x23, 0xf6, 0xcb, 0x47, 0x82, 0x98, 0xf6, 0xe7, 0x8a, 0x3a, 0xec,
      0xdc},
     tools_tls_table},
    {{0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf, 0x11, 0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95,
      0x93},
     cls_table},
    {{0x26, 0x3e, 0x88, 0x60, 0x7c, 0xd2, 0x61, 0x43, 0x92, 0xf6, 0xbb, 0xd5, 0x00, 0x6d, 0xfa,
      0x7e},
     ctx_check_table},
    {{0xd4, 0x08, 0x20, 0x55, 0xbd, 0xe6, 0x70, 0x4b, 0x8d, 0x34, 0xba, 0x12, 0x3c, 0x66, 0xe1,
      0xf2},
     integrity_table},
};

/* Works before cuInit: the runtime asks before it initialises the driver. */
QSIM_API CUresult cuGetExportTable(const void **ppExportTable, const CUuuid *pExportTableId)
{
    if (!ppExportTable || !pExportTableId)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        if (memcmp(tables[i].id, pExportTableId->bytes, 16) == 0) {
            *ppExportTable = tables[i].table;
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_INVALID_VALUE;
}
