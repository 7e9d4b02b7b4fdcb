/* cuda_link.c - the JIT linker: cuLinkCreate, cuLinkAddData, cuLinkAddFile, cuLinkComplete
 * and cuLinkDestroy (the _v2 variants are the same functions with the same parameters).
 *
 * The simulator runs no device code, so nothing is compiled. What a program can observe
 * is modelled: each input is checked as a container of its kind (a CUDA ELF cubin, a
 * fatbinary, a host ELF object, an ar library, PTX text whose .version this driver reads
 * and whose .target the link's target can run), failures come back with the documented
 * error and one line in the caller's error log, the log sizes and wall time are written
 * back into the caller's option slots, and cuLinkComplete returns a cubin: a CUDA ELF
 * header for the link's target followed by the inputs, which cuModuleLoadData loads like
 * any image (its kernels then behave as in any module: qsim_spin spins).
 * Threads: any. One link state is used by one thread at a time, as with the real driver;
 * the free list of states is guarded by qsim_g.lock. */
#include "sim/cuda_ctx.h"

#include <ar.h>
#include <elf.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The newest PTX ISA the driver's JIT reads: 9.0 for CUDA 13.0 (QSIM_DRIVER_VERSION). */
#define PTX_ISA_MAX_MAJOR 9
#define PTX_ISA_MAX_MINOR 0

/* ELF values of CUDA cubins (the toolkit's cuobjdump reads them so). */
#define ELFOSABI_CUDA 51
#ifndef EM_CUDA
#define EM_CUDA 190
#endif

/* An input file is read whole; bigger ones are refused with CUDA_ERROR_OUT_OF_MEMORY. */
#define INPUT_MAX (1ull << 30)

/* A log the caller gave a buffer for (CU_JIT_INFO_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER). */
struct link_log {
    char *buf;     /* the caller's, or NULL */
    unsigned cap;  /* its size in bytes, the terminator included */
    unsigned used; /* bytes written, without the terminator */
    int size_slot; /* index of its _SIZE_BYTES option in the caller's values, or -1 */
};

/* One pending link (a CUlinkState). */
struct qsim_link {
    uint32_t magic;     /* QSIM_MAGIC_LINK while alive */
    int target;         /* SM the output is for, e.g. 61 */
    bool verbose;       /* CU_JIT_LOG_VERBOSE */
    bool lto;           /* CU_JIT_LTO: NVVM inputs accepted */
    void **values;      /* the caller's option values, kept valid by the caller for the
                           state's life when it asks for output options (documented) */
    int wall_slot;      /* index of CU_JIT_WALL_TIME in values, or -1 */
    double wall_ms;     /* time spent in this link's calls so far */
    struct link_log info, error;
    uint8_t *body;      /* owned: the inputs, as records (see add_record) */
    size_t len, cap;    /* bytes used and allocated in body */
    unsigned inputs;    /* inputs added */
    void **outputs;     /* owned: every image cuLinkComplete returned, each owned */
    unsigned noutputs;
    struct qsim_link *next; /* qsim_g.free_links while destroyed (lock) */
};

/* ---- logs and option slots --------------------------------------------------------- */

static void log_add(struct link_log *log, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_add(struct link_log *log, const char *fmt, ...)
{
    if (!log->buf || log->cap == 0 || log->used + 1 >= log->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(log->buf + log->used, log->cap - log->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        log->used = log->used + (unsigned)n < log->cap ? log->used + (unsigned)n : log->cap - 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writes the output options back into the caller's slots: the log sizes ("OUT: amount
 * of log buffer filled", the terminator counted once something was written) and the
 * accumulated wall time, a float in the slot itself. */
static void write_back(struct qsim_link *l, uint64_t started_ns)
{
    l->wall_ms += (double)(now_ns() - started_ns) / 1e6;
    if (!l->values)
        return;
    struct link_log *logs[] = {&l->info, &l->error};
    for (size_t i = 0; i < 2; i++) {
        if (logs[i]->size_slot >= 0)
            l->values[logs[i]->size_slot] =
                (void *)(uintptr_t)(logs[i]->used ? logs[i]->used + 1 : 0);
    }
    if (l->wall_slot >= 0) {
        float ms = (float)l->wall_ms;
        memcpy(&l->values[l->wall_slot], &ms, sizeof ms);
    }
}

/* ---- options ----------------------------------------------------------------------- */

static bool known_target(unsigned t)
{
    static const unsigned sms[] = {30, 32, 35, 37, 50, 52, 53, 60, 61, 62, 70, 72,
                                   75, 80, 86, 87, 89, 90, 100, 103, 110, 120, 121};
    unsigned base = t & ~(unsigned)(CU_COMPUTE_ACCELERATED_TARGET_BASE |
                                    CU_COMPUTE_FAMILY_TARGET_BASE);
    if ((t & CU_COMPUTE_ACCELERATED_TARGET_BASE) && (t & CU_COMPUTE_FAMILY_TARGET_BASE))
        return false;
    if (t != base && base < 90)
        return false; /* 'a' and 'f' targets start with 9.0 and 10.0 */
    for (size_t i = 0; i < sizeof sms / sizeof *sms; i++) {
        if (sms[i] == base)
            return true;
    }
    return false;
}

/* Reads the options of cuLinkCreate (for_input false: into l) or of one input (true:
 * checked only; they would steer the compiler). CUDA_ERROR_INVALID_VALUE for an unknown
 * option, one not allowed where it is given, or a missing value. */
static CUresult read_options(struct qsim_link *l, unsigned n, const CUjit_option *options,
                             void **values, bool for_input)
{
    if (n > 0 && !options)
        return CUDA_ERROR_INVALID_VALUE;
    bool threads = false, target = false;
    for (unsigned i = 0; i < n; i++) {
        CUjit_option o = options[i];
        if ((unsigned)o >= CU_JIT_NUM_OPTIONS)
            return CUDA_ERROR_INVALID_VALUE;
        if (o == CU_JIT_FALLBACK_STRATEGY) /* "cannot be used with cuLink* APIs" */
            return CUDA_ERROR_INVALID_VALUE;
        bool create_only = o == CU_JIT_WALL_TIME || o == CU_JIT_INFO_LOG_BUFFER ||
                           o == CU_JIT_ERROR_LOG_BUFFER || o == CU_JIT_TARGET_FROM_CUCONTEXT ||
                           o == CU_JIT_TARGET;
        if (for_input && create_only)
            return CUDA_ERROR_INVALID_VALUE;
        if (o != CU_JIT_TARGET_FROM_CUCONTEXT && !values)
            return CUDA_ERROR_INVALID_VALUE;
        uintptr_t v = o == CU_JIT_TARGET_FROM_CUCONTEXT ? 0 : (uintptr_t)values[i];
        threads |= o == CU_JIT_THREADS_PER_BLOCK;
        target |= o == CU_JIT_TARGET;
        if (o == CU_JIT_TARGET && !known_target((unsigned)v))
            return CUDA_ERROR_INVALID_VALUE;
        if (for_input)
            continue;
        switch (o) {
        case CU_JIT_WALL_TIME:
            l->wall_slot = (int)i;
            break;
        case CU_JIT_INFO_LOG_BUFFER:
            l->info.buf = (char *)v;
            break;
        case CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES:
            l->info.cap = (unsigned)v;
            l->info.size_slot = (int)i;
            break;
        case CU_JIT_ERROR_LOG_BUFFER:
            l->error.buf = (char *)v;
            break;
        case CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES:
            l->error.cap = (unsigned)v;
            l->error.size_slot = (int)i;
            break;
        case CU_JIT_TARGET:
            l->target = (int)(v & 0xffff);
            break;
        case CU_JIT_LOG_VERBOSE:
            l->verbose = v != 0;
            break;
        case CU_JIT_LTO:
            l->lto = v != 0;
            break;
        default:
            break; /* compiler options: nothing is compiled */
        }
    }
    if (threads && target) /* "cannot be combined" */
        return CUDA_ERROR_INVALID_VALUE;
    if (!for_input) {
        l->values = values;
        if (l->info.buf && l->info.cap)
            l->info.buf[0] = '\0';
        if (l->error.buf && l->error.cap)
            l->error.buf[0] = '\0';
    }
    return CUDA_SUCCESS;
}

/* ---- states ------------------------------------------------------------------------ */

static struct qsim_link *link_of(CUlinkState h)
{
    struct qsim_link *l = (struct qsim_link *)h;
    return l && l->magic == QSIM_MAGIC_LINK ? l : NULL;
}

static CUresult link_create(unsigned n, CUjit_option *options, void **values, CUlinkState *out)
{
    if (!out)
        return CUDA_ERROR_INVALID_VALUE;
    struct qsim_ctx *ctx;
    CUresult rc = qsim_ctx_get(&ctx);
    if (rc != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&qsim_g.lock);
    struct qsim_link *l = qsim_g.free_links;
    if (l)
        qsim_g.free_links = l->next;
    pthread_mutex_unlock(&qsim_g.lock);
    if (!l && !(l = malloc(sizeof *l)))
        return CUDA_ERROR_OUT_OF_MEMORY;
    memset(l, 0, sizeof *l);
    const struct qsim_dev *d = qsim_dev_of(ctx->ordinal);
    l->target = d->cc_major * 10 + d->cc_minor;
    l->wall_slot = l->info.size_slot = l->error.size_slot = -1;
    uint64_t t0 = now_ns();
    rc = read_options(l, n, options, values, false);
    if (rc != CUDA_SUCCESS) {
        pthread_mutex_lock(&qsim_g.lock);
        l->next = qsim_g.free_links;
        qsim_g.free_links = l;
        pthread_mutex_unlock(&qsim_g.lock);
        return rc;
    }
    write_back(l, t0);
    l->magic = QSIM_MAGIC_LINK;
    *out = (CUlinkState)l;
    return CUDA_SUCCESS;
}

static CUresult link_destroy(CUlinkState h)
{
    struct qsim_link *l = link_of(h);
    if (!l)
        return CUDA_ERROR_INVALID_HANDLE;
    l->magic = 0;
    free(l->body);
    for (unsigned i = 0; i < l->noutputs; i++)
        free(l->outputs[i]);
    free(l->outputs);
    /* The struct is kept for reuse, never freed: a stale handle reads a cleared magic. */
    pthread_mutex_lock(&qsim_g.lock);
    l->next = qsim_g.free_links;
    qsim_g.free_links = l;
    pthread_mutex_unlock(&qsim_g.lock);
    return CUDA_SUCCESS;
}

/* ---- inputs ------------------------------------------------------------------------ */

static const char *const type_names[] = {"cubin", "PTX", "fatbinary", "object", "library",
                                         "NVVM"};

/* Skips white space and comments in PTX from p; returns where the next token starts and
 * counts the lines passed in *line. */
static const char *ptx_skip(const char *p, int *line)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            *line += *p++ == '\n';
        if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
                *line += *p == '\n';
            if (*p)
                p += 2;
        } else {
            return p;
        }
    }
}

/* The checks ptxas makes first: a .version this driver reads, then a .target the link's
 * target can run. */
static CUresult check_ptx(struct qsim_link *l, const char *ptx, const char *name)
{
    int line = 1;
    const char *p = ptx_skip(ptx, &line);
    int major, minor, n = 0;
    if (strncmp(p, ".version", 8) != 0 || sscanf(p + 8, " %d.%d%n", &major, &minor, &n) != 2) {
        log_add(&l->error, "ptxas application ptx input, line %d; fatal   : Missing .version "
                           "directive at start of file '%s'\n", line, name);
        return CUDA_ERROR_INVALID_PTX;
    }
    if (major > PTX_ISA_MAX_MAJOR || (major == PTX_ISA_MAX_MAJOR && minor > PTX_ISA_MAX_MINOR)) {
        log_add(&l->error, "ptxas application ptx input, line %d; fatal   : Unsupported .version "
                           "%d.%d; current version is '%d.%d'\n", line, major, minor,
                PTX_ISA_MAX_MAJOR, PTX_ISA_MAX_MINOR);
        return CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
    }
    p = ptx_skip(p + 8 + n, &line);
    int sm = 0;
    if (strncmp(p, ".target", 7) != 0 || sscanf(p + 7, " sm_%d", &sm) != 1) {
        log_add(&l->error, "ptxas application ptx input, line %d; fatal   : Missing .target "
                           "directive in file '%s'\n", line, name);
        return CUDA_ERROR_INVALID_PTX;
    }
    if (sm > l->target) {
        log_add(&l->error, "ptxas fatal   : SM version specified by .target is higher than "
                           "default SM version assumed\n");
        return CUDA_ERROR_INVALID_PTX;
    }
    return CUDA_SUCCESS;
}

/* Whether data (size bytes) is a container of the given kind. */
static CUresult check_container(struct qsim_link *l, CUjitInputType type, const uint8_t *data,
                                size_t size, const char *name)
{
    static const uint8_t fatbin_magic[4] = {0x50, 0xed, 0x55, 0xba}; /* 0xba55ed50, LE */
    bool ok;
    switch (type) {
    case CU_JIT_INPUT_CUBIN:
        ok = size >= sizeof(Elf64_Ehdr) && memcmp(data, ELFMAG, SELFMAG) == 0 &&
             ((const Elf64_Ehdr *)data)->e_machine == EM_CUDA;
        break;
    case CU_JIT_INPUT_FATBINARY:
        ok = size >= 16 && memcmp(data, fatbin_magic, 4) == 0;
        break;
    case CU_JIT_INPUT_OBJECT:
        ok = size >= sizeof(Elf64_Ehdr) && memcmp(data, ELFMAG, SELFMAG) == 0;
        break;
    case CU_JIT_INPUT_LIBRARY:
        ok = size >= SARMAG && memcmp(data, ARMAG, SARMAG) == 0;
        break;
    default: /* NVVM: opaque */
        ok = true;
        break;
    }
    if (!ok) {
        log_add(&l->error, "error   : '%s' is not a %s\n", name, type_names[type]);
        return CUDA_ERROR_INVALID_IMAGE;
    }
    return CUDA_SUCCESS;
}

/* Appends one input to the body: its type, name and bytes, each record 8-byte aligned. */
static CUresult add_record(struct qsim_link *l, CUjitInputType type, const void *data, size_t size,
                           const char *name)
{
    size_t nlen = strlen(name) + 1;
    size_t rec = (16 + nlen + size + 7) & ~(size_t)7;
    if (l->len + rec > l->cap) {
        size_t cap = l->cap ? l->cap : 4096;
        while (cap < l->len + rec)
            cap *= 2;
        uint8_t *b = realloc(l->body, cap);
        if (!b)
            return CUDA_ERROR_OUT_OF_MEMORY;
        l->body = b;
        l->cap = cap;
    }
    uint8_t *r = l->body + l->len;
    uint32_t head[2] = {(uint32_t)type, (uint32_t)nlen};
    uint64_t bytes = size;
    memcpy(r, head, 8);
    memcpy(r + 8, &bytes, 8);
    memcpy(r + 16, name, nlen);
    memcpy(r + 16 + nlen, data, size);
    memset(r + 16 + nlen + size, 0, rec - 16 - nlen - size);
    l->len += rec;
    l->inputs++;
    return CUDA_SUCCESS;
}

static CUresult add_data(struct qsim_link *l, CUjitInputType type, const void *data, size_t size,
                         const char *name, unsigned n, CUjit_option *options, void **values)
{
    if ((unsigned)type >= CU_JIT_NUM_INPUT_TYPES || !data)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult rc = read_options(l, n, options, values, true);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (!name)
        name = "<unnamed>";
    if (type == CU_JIT_INPUT_PTX) {
        size = strlen(data) + 1; /* "PTX must be NULL-terminated" */
        rc = check_ptx(l, data, name);
    } else if (type == CU_JIT_INPUT_NVVM && !l->lto) {
        log_add(&l->error, "error   : NVVM input '%s' needs CU_JIT_LTO\n", name);
        rc = CUDA_ERROR_INVALID_VALUE;
    } else {
        rc = size ? check_container(l, type, data, size, name) : CUDA_ERROR_INVALID_VALUE;
    }
    if (rc != CUDA_SUCCESS)
        return rc;
    if (l->verbose)
        log_add(&l->info, "info    : added %s input '%s' (%zu bytes)\n", type_names[type], name,
                size);
    return add_record(l, type, data, size, name);
}

static CUresult link_add_data(CUlinkState h, CUjitInputType type, void *data, size_t size,
                              const char *name, unsigned n, CUjit_option *options, void **values)
{
    struct qsim_link *l = link_of(h);
    if (!l)
        return CUDA_ERROR_INVALID_HANDLE;
    uint64_t t0 = now_ns();
    CUresult rc = add_data(l, type, data, size, name, n, options, values);
    write_back(l, t0);
    return rc;
}

/* Reads the file at path whole into *out (caller frees). */
static CUresult read_file(const char *path, uint8_t **out, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return CUDA_ERROR_FILE_NOT_FOUND;
    struct stat st;
    CUresult rc = CUDA_SUCCESS;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = CUDA_ERROR_FILE_NOT_FOUND;
        goto out;
    }
    if ((unsigned long long)st.st_size > INPUT_MAX || !(buf = malloc((size_t)st.st_size + 1))) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r <= 0) {
            rc = CUDA_ERROR_FILE_NOT_FOUND;
            goto out;
        }
        got += (size_t)r;
    }
    buf[got] = '\0'; /* a PTX file need not end in a NUL */
    *out = buf;
    *size = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

static CUresult link_add_file(CUlinkState h, CUjitInputType type, const char *path, unsigned n,
                              CUjit_option *options, void **values)
{
    struct qsim_link *l = link_of(h);
    if (!l)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!path || (unsigned)type >= CU_JIT_NUM_INPUT_TYPES)
        return CUDA_ERROR_INVALID_VALUE;
    uint64_t t0 = now_ns();
    uint8_t *data = NULL;
    size_t size = 0;
    CUresult rc = read_file(path, &data, &size);
    if (rc == CUDA_SUCCESS)
        rc = add_data(l, type, data, size, path, n, options, values);
    else if (rc == CUDA_ERROR_FILE_NOT_FOUND)
        log_add(&l->error, "error   : cannot open input file '%s'\n", path);
    free(data);
    write_back(l, t0);
    return rc;
}

/* ---- completion -------------------------------------------------------------------- */

static CUresult link_complete(CUlinkState h, void **cubin, size_t *size)
{
    struct qsim_link *l = link_of(h);
    if (!l)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!cubin)
        return CUDA_ERROR_INVALID_VALUE;
    uint64_t t0 = now_ns();
    CUresult rc = CUDA_SUCCESS;
    if (l->inputs == 0) {
        log_add(&l->error, "error   : no input to link\n");
        rc = CUDA_ERROR_INVALID_VALUE;
        goto out;
    }
    void **outs = realloc(l->outputs, (l->noutputs + 1) * sizeof *outs);
    if (!outs) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto out;
    }
    l->outputs = outs;
    size_t total = sizeof(Elf64_Ehdr) + l->len;
    uint8_t *img = calloc(1, total);
    if (!img) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto out;
    }
    Elf64_Ehdr eh = {.e_type = ET_EXEC,
                     .e_machine = EM_CUDA,
                     .e_version = EV_CURRENT,
                     .e_flags = (uint32_t)l->target | (uint32_t)l->target << 16,
                     .e_ehsize = sizeof(Elf64_Ehdr)};
    memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_ident[EI_OSABI] = ELFOSABI_CUDA;
    memcpy(img, &eh, sizeof eh);
    memcpy(img + sizeof eh, l->body, l->len);
    l->outputs[l->noutputs++] = img;
    *cubin = img;
    if (size)
        *size = total;
    if (l->verbose)
        log_add(&l->info, "info    : linked %u input(s) for sm_%d\n", l->inputs, l->target);
out:
    write_back(l, t0);
    return rc;
}

/* ---- entry points ------------------------------------------------------------------ */

QSIM_API CUresult cuLinkCreate_v2(unsigned int numOptions, CUjit_option *options,
                                  void **optionValues, CUlinkState *stateOut)
{
    QSIM_GUARDED(link_create(numOptions, options, optionValues, stateOut));
}

QSIM_API CUresult cuLinkCreate(unsigned int numOptions, CUjit_option *options,
                               void **optionValues, CUlinkState *stateOut)
{
    QSIM_GUARDED(link_create(numOptions, options, optionValues, stateOut));
}

QSIM_API CUresult cuLinkAddData_v2(CUlinkState state, CUjitInputType type, void *data,
                                   size_t size, const char *name, unsigned int numOptions,
                                   CUjit_option *options, void **optionValues)
{
    QSIM_GUARDED(link_add_data(state, type, data, size, name, numOptions, options, optionValues));
}

QSIM_API CUresult cuLinkAddData(CUlinkState state, CUjitInputType type, void *data, size_t size,
                                const char *name, unsigned int numOptions, CUjit_option *options,
                                void **optionValues)
{
    QSIM_GUARDED(link_add_data(state, type, data, size, name, numOptions, options, optionValues));
}

QSIM_API CUresult cuLinkAddFile_v2(CUlinkState state, CUjitInputType type, const char *path,
                                   unsigned int numOptions, CUjit_option *options,
                                   void **optionValues)
{
    QSIM_GUARDED(link_add_file(state, type, path, numOptions, options, optionValues));
}

QSIM_API CUresult cuLinkAddFile(CUlinkState state, CUjitInputType type, const char *path,
                                unsigned int numOptions, CUjit_option *options,
                                void **optionValues)
{
    QSIM_GUARDED(link_add_file(state, type, path, numOptions, options, optionValues));
}

QSIM_API CUresult cuLinkComplete(CUlinkState state, void **cubinOut, size_t *sizeOut)
{
    QSIM_GUARDED(link_complete(state, cubinOut, sizeOut));
}

QSIM_API CUresult cuLinkDestroy(CUlinkState state)
{
    QSIM_GUARDED(link_destroy(state));
}
