/* host.c - GPUs and vGPUs: validation, admission, placement, records. Loop thread only. */
#include "arbiter/host.h"

#include "arbiter/placement.h"
#include "proto/units.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct qa_host {
    const qa_config_t *cfg; /* borrowed */
    qa_gpu_t *gpus;         /* owned, ngpus entries */
    size_t ngpus;
    qa_vgpu_t **vgpus; /* owned, with the vGPUs: nvgpus in creation order */
    size_t nvgpus;
    uint64_t next_id; /* number of the next id handed out */
};

qa_host_t *qa_host_new(const qa_gpu_desc_t *gpus, size_t n, const qa_config_t *cfg)
{
    if (n == 0 || n > QA_MAX_GPUS)
        return NULL;
    qa_host_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->vgpus = calloc(QA_MAX_VGPUS, sizeof *self->vgpus);
    self->gpus = calloc(n, sizeof *self->gpus);
    if (!self->vgpus || !self->gpus) {
        free(self->vgpus);
        free(self->gpus);
        free(self);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        self->gpus[i].desc = gpus[i];
    self->ngpus = n;
    self->cfg = cfg;
    self->next_id = 1;
    return self;
}

void qa_host_destroy(qa_host_t **self_p)
{
    qa_host_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nvgpus; i++)
        free(self->vgpus[i]);
    free(self->vgpus);
    free(self->gpus);
    free(self);
    *self_p = NULL;
}

size_t qa_host_ngpus(const qa_host_t *self)
{
    return self->ngpus;
}

qa_gpu_t *qa_host_gpu(qa_host_t *self, size_t i)
{
    return i < self->ngpus ? &self->gpus[i] : NULL;
}

qa_gpu_t *qa_host_gpu_by_uuid(qa_host_t *self, const char *uuid)
{
    for (size_t i = 0; i < self->ngpus; i++) {
        if (strcmp(self->gpus[i].desc.uuid, uuid) == 0)
            return &self->gpus[i];
    }
    return NULL;
}

size_t qa_host_nvgpus(const qa_host_t *self)
{
    return self->nvgpus;
}

qa_vgpu_t *qa_host_vgpu(qa_host_t *self, size_t i)
{
    return i < self->nvgpus ? self->vgpus[i] : NULL;
}

qa_vgpu_t *qa_host_find(qa_host_t *self, const char *id)
{
    for (size_t i = 0; i < self->nvgpus; i++) {
        if (strcmp(self->vgpus[i]->id, id) == 0)
            return self->vgpus[i];
    }
    return NULL;
}

uint64_t qa_host_next_id(const qa_host_t *self)
{
    return self->next_id;
}

void qa_host_skip_ids(qa_host_t *self, uint64_t n)
{
    if (n > self->next_id)
        self->next_id = n;
}

static qa_gpu_load_t load_of(const qa_gpu_t *g)
{
    return (qa_gpu_load_t){g->desc.memory_total / QP_MIB, g->memory_reserved_mb, g->share_reserved,
                           g->util};
}

/* Charges (sign > 0) or uncharges v's quota and share on GPU gpu. */
static void charge_on(qa_host_t *self, const qa_vgpu_t *v, unsigned gpu, int sign)
{
    qa_gpu_t *g = &self->gpus[gpu];
    if (sign > 0) {
        g->memory_reserved_mb += v->memory_mb;
        g->share_reserved += v->share;
        g->nvgpus++;
    } else {
        g->memory_reserved_mb -= v->memory_mb;
        g->share_reserved -= v->share;
        g->nvgpus--;
    }
}

static void charge(qa_host_t *self, const qa_vgpu_t *v, int sign)
{
    charge_on(self, v, v->gpu, sign);
    if (v->moving)
        charge_on(self, v, v->moving - 1, sign);
}

static bool printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    }
    return true;
}

static int check_values(uint64_t memory_mb, unsigned share, unsigned limit, char *err)
{
    if (memory_mb == 0) {
        snprintf(err, QP_ERR_LEN, "memory must be at least 1 MiB");
        return -EINVAL;
    }
    if (share < 1 || share > 100) {
        snprintf(err, QP_ERR_LEN, "share %u%% is not a percentage from 1 to 100", share);
        return -EINVAL;
    }
    if (limit > 100) {
        snprintf(err, QP_ERR_LEN, "limit %u%% is not a percentage from 0 (none) to 100", limit);
        return -EINVAL;
    }
    if (limit && limit < share) {
        snprintf(err, QP_ERR_LEN, "limit %u%% is below share %u%% (a limit caps the share)", limit,
                 share);
        return -EINVAL;
    }
    return 0;
}

static void profile_list(const qa_config_t *cfg, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->nprofiles && len < size; i++)
        len +=
            (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", cfg->profiles[i].name);
}

/* Resolves spec into memory, share, limit and a profile name. */
static int resolve(const qa_config_t *cfg, const qa_spec_t *spec, qa_vgpu_t *v, char *err)
{
    size_t vmlen = spec->vm ? strlen(spec->vm) : 0;
    if (vmlen == 0 || vmlen >= QP_VM_LEN || !printable(spec->vm)) {
        snprintf(err, QP_ERR_LEN, "the VM name must be 1 to %d printable characters",
                 QP_VM_LEN - 1);
        return -EINVAL;
    }
    memcpy(v->vm, spec->vm, vmlen + 1);
    if (spec->profile) {
        if (spec->memory_mb || spec->share) {
            snprintf(err, QP_ERR_LEN, "give a profile or memory and share, not both");
            return -EINVAL;
        }
        const qa_profile_t *p = qa_config_profile(cfg, spec->profile);
        if (!p) {
            char known[160];
            profile_list(cfg, known, sizeof known);
            snprintf(err, QP_ERR_LEN, "unknown profile '%.32s' (known: %s)", spec->profile, known);
            return -EINVAL;
        }
        snprintf(v->profile, sizeof v->profile, "%s", p->name);
        v->memory_mb = p->memory_mb;
        v->share = p->share;
        v->limit = p->limit;
    } else {
        if (!spec->memory_mb || !spec->share) {
            snprintf(err, QP_ERR_LEN, "give a profile, or both memory and share");
            return -EINVAL;
        }
        snprintf(v->profile, sizeof v->profile, "custom");
        v->memory_mb = spec->memory_mb;
        v->share = spec->share;
    }
    if (spec->has_limit)
        v->limit = spec->limit;
    return check_values(v->memory_mb, v->share, v->limit, err);
}

static int make_secret(char out[QP_SECRET_LEN])
{
    uint8_t raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno != EINTR)
            return -EIO;
        if (n > 0)
            got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

int qa_host_gpu_check(const qa_host_t *self, int64_t gpu, char err[QP_ERR_LEN])
{
    if (gpu >= 0 && (uint64_t)gpu < self->ngpus)
        return 0;
    snprintf(err, QP_ERR_LEN, "there is no GPU %lld (this host has GPUs 0 to %zu)",
             (long long)gpu, self->ngpus - 1);
    return -ENOENT;
}

int qa_host_create(qa_host_t *self, const qa_spec_t *spec, int64_t now, qa_vgpu_t **out,
                   char err[QP_ERR_LEN])
{
    qa_vgpu_t *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    int rc = resolve(self->cfg, spec, v, err);
    if (rc == 0 && self->nvgpus == QA_MAX_VGPUS) {
        snprintf(err, QP_ERR_LEN, "the arbiter already holds %d vGPUs, its most", QA_MAX_VGPUS);
        rc = -ENOSPC;
    }
    if (rc == 0 && spec->gpu >= 0) {
        rc = qa_host_gpu_check(self, spec->gpu, err);
        if (rc == 0) {
            qa_gpu_load_t l = load_of(&self->gpus[spec->gpu]);
            rc = qa_admit(&l, spec->gpu, v->memory_mb, v->share, self->cfg, err);
            v->gpu = (unsigned)spec->gpu;
        }
    } else if (rc == 0) {
        qa_gpu_load_t loads[QA_MAX_GPUS];
        for (size_t i = 0; i < self->ngpus; i++)
            loads[i] = load_of(&self->gpus[i]);
        rc = qa_place(loads, self->ngpus, v->memory_mb, v->share, self->cfg, err);
        if (rc >= 0) {
            v->gpu = (unsigned)rc;
            rc = 0;
        }
    }
    if (rc == 0 && make_secret(v->secret) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot read random bytes for the secret: %s", strerror(errno));
        rc = -EIO;
    }
    if (rc < 0) {
        free(v);
        return rc;
    }
    snprintf(v->id, sizeof v->id, "vg-%" PRIu64, self->next_id++);
    v->created = now;
    self->vgpus[self->nvgpus++] = v;
    charge(self, v, +1);
    *out = v;
    return 0;
}

/* An id as we make them: "vg-" and a decimal number. Returns the number or 0. */
static uint64_t id_number(const char *id)
{
    if (strncmp(id, "vg-", 3) != 0 || !id[3] || strspn(id + 3, "0123456789") != strlen(id + 3) ||
        strlen(id) >= QP_ID_LEN || id[3] == '0')
        return 0;
    return strtoull(id + 3, NULL, 10);
}

int qa_host_adopt(qa_host_t *self, const qa_vgpu_t *v, const char *gpu_uuid, char err[QP_ERR_LEN])
{
    uint64_t n = id_number(v->id);
    if (!n) {
        snprintf(err, QP_ERR_LEN, "'%.32s' is not a vGPU id", v->id);
        return -EINVAL;
    }
    if (qa_host_find(self, v->id)) {
        snprintf(err, QP_ERR_LEN, "vGPU %s is there twice", v->id);
        return -EEXIST;
    }
    int rc = check_values(v->memory_mb, v->share, v->limit, err);
    if (rc < 0)
        return rc;
    if (strlen(v->secret) != QP_SECRET_LEN - 1 ||
        strspn(v->secret, "0123456789abcdef") != QP_SECRET_LEN - 1) {
        snprintf(err, QP_ERR_LEN, "vGPU %s has a malformed secret", v->id);
        return -EINVAL;
    }
    const qa_gpu_t *g = qa_host_gpu_by_uuid(self, gpu_uuid);
    if (!g) {
        snprintf(err, QP_ERR_LEN, "vGPU %s lives on GPU %.96s, which is not here", v->id, gpu_uuid);
        return -ENODEV;
    }
    /* Admission may have changed with the config, but no vGPU is ever larger than its
     * GPU: a record that says so was damaged or planted, and would hand out memory that
     * does not exist. */
    if (v->memory_mb > g->desc.memory_total / QP_MIB) {
        snprintf(err, QP_ERR_LEN, "vGPU %s has %llu MiB, more than its GPU %u has (%llu MiB)",
                 v->id, (unsigned long long)v->memory_mb, g->desc.index,
                 (unsigned long long)(g->desc.memory_total / QP_MIB));
        return -EINVAL;
    }
    if (self->nvgpus == QA_MAX_VGPUS) {
        snprintf(err, QP_ERR_LEN, "more than %d vGPUs", QA_MAX_VGPUS);
        return -EINVAL;
    }
    qa_vgpu_t *copy = malloc(sizeof *copy);
    if (!copy) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return -ENOMEM;
    }
    *copy = *v;
    copy->gpu = (unsigned)(g - self->gpus);
    copy->util = 0;
    copy->sessions = NULL;
    copy->ghosts = NULL;
    copy->ghost_bytes = 0;
    copy->ent = NULL;
    copy->moving = 0;
    copy->in_move = false;
    copy->moved_at = 0;
    copy->util_sum = 0;
    copy->util_samples = 0;
    copy->procs = 0;
    copy->mem_used = copy->mem_reserved = 0;
    /* Keep creation order across restarts: ids grow with time. */
    size_t at = self->nvgpus;
    while (at > 0 && id_number(self->vgpus[at - 1]->id) > n) {
        self->vgpus[at] = self->vgpus[at - 1];
        at--;
    }
    self->vgpus[at] = copy;
    self->nvgpus++;
    charge(self, copy, +1);
    qa_host_skip_ids(self, n + 1);
    return 0;
}

int qa_host_resize(qa_host_t *self, const char *id, const qa_change_t *change, qa_vgpu_t **out,
                   char err[QP_ERR_LEN])
{
    qa_vgpu_t *v = qa_host_find(self, id);
    if (!v) {
        snprintf(err, QP_ERR_LEN, "there is no vGPU '%.32s'", id);
        return -ENOENT;
    }
    if (v->in_move) {
        snprintf(err, QP_ERR_LEN, "vGPU %s is moving to another GPU: resize it once that is done",
                 v->id);
        return -EBUSY;
    }
    uint64_t memory_mb = change->has_memory ? change->memory_mb : v->memory_mb;
    unsigned share = change->has_share ? change->share : v->share;
    unsigned limit = change->has_limit ? change->limit : v->limit;
    int rc = check_values(memory_mb, share, limit, err);
    if (rc < 0)
        return rc;
    qa_gpu_t *g = &self->gpus[v->gpu];
    qa_gpu_load_t l = load_of(g);
    l.memory_reserved_mb -= v->memory_mb;
    l.share_reserved -= v->share;
    /* Shrinking is always admitted, even when the GPU is oversubscribed by a config
     * change: it only makes things better. */
    bool grows = memory_mb > v->memory_mb || share > v->share;
    if (grows && (rc = qa_admit(&l, (int)v->gpu, memory_mb, share, self->cfg, err)) < 0)
        return rc;
    charge(self, v, -1);
    const qa_profile_t *p = qa_config_profile(self->cfg, v->profile);
    if (!p || p->memory_mb != memory_mb || p->share != share)
        snprintf(v->profile, sizeof v->profile, "custom");
    v->memory_mb = memory_mb;
    v->share = share;
    v->limit = limit;
    charge(self, v, +1);
    *out = v;
    return 0;
}

int qa_host_move_begin(qa_host_t *self, qa_vgpu_t *v, int to, char err[QP_ERR_LEN])
{
    int rc = qa_host_gpu_check(self, to, err);
    if (rc < 0)
        return rc;
    const qa_gpu_t *src = &self->gpus[v->gpu], *dst = &self->gpus[to];
    if (v->in_move) {
        snprintf(err, QP_ERR_LEN, "vGPU %s is moving to another GPU already", v->id);
        return -EBUSY;
    }
    if ((unsigned)to == v->gpu) {
        snprintf(err, QP_ERR_LEN, "vGPU %s is on GPU %d already", v->id, to);
        return -EINVAL;
    }
    if (strcmp(src->desc.name, dst->desc.name) != 0) {
        snprintf(err, QP_ERR_LEN,
                 "GPU %d is a %.48s and vGPU %.24s's GPU %u a %.48s: the driver moves processes only "
                 "between GPUs of one chip",
                 to, dst->desc.name, v->id, v->gpu, src->desc.name);
        return -EINVAL;
    }
    qa_gpu_load_t l = load_of(dst);
    if ((rc = qa_admit(&l, to, v->memory_mb, v->share, self->cfg, err)) < 0)
        return rc;
    v->moving = (unsigned)to + 1;
    v->in_move = true;
    charge_on(self, v, (unsigned)to, +1);
    return 0;
}

void qa_host_move_end(qa_host_t *self, qa_vgpu_t *v, bool commit)
{
    if (!v->moving)
        return;
    unsigned to = v->moving - 1;
    v->moving = 0;
    if (commit) {
        charge_on(self, v, v->gpu, -1);
        v->gpu = to;
    } else {
        charge_on(self, v, to, -1);
    }
}

qa_vgpu_t *qa_host_take(qa_host_t *self, const char *id)
{
    for (size_t i = 0; i < self->nvgpus; i++) {
        qa_vgpu_t *v = self->vgpus[i];
        if (strcmp(v->id, id) != 0)
            continue;
        memmove(&self->vgpus[i], &self->vgpus[i + 1], (self->nvgpus - i - 1) * sizeof v);
        self->nvgpus--;
        charge(self, v, -1);
        return v;
    }
    return NULL;
}

void qa_host_info(qa_host_t *self, const qa_vgpu_t *v, qp_info_t *out)
{
    const qa_gpu_t *g = &self->gpus[v->gpu];
    /* Whole arrays of the same sizes, NUL-terminated in the source: a view copies a
     * thousand of these per scrape, and snprintf cost five times as much. */
    _Static_assert(sizeof out->id == sizeof v->id && sizeof out->vm == sizeof v->vm &&
                       sizeof out->profile == sizeof v->profile &&
                       sizeof out->gpu_uuid == sizeof g->desc.uuid,
                   "INFO's strings are the vGPU's");
    memcpy(out->id, v->id, sizeof out->id);
    memcpy(out->vm, v->vm, sizeof out->vm);
    out->gpu = (int)g->desc.index;
    memcpy(out->gpu_uuid, g->desc.uuid, sizeof out->gpu_uuid);
    memcpy(out->profile, v->profile, sizeof out->profile);
    out->memory_mb = v->memory_mb;
    out->cuda_cores = (uint64_t)v->share * g->desc.cuda_cores / 100;
    out->share = v->share;
    out->limit = v->limit;
    out->util = v->util;
    /* the sum of its sessions' reports: never shown beyond what its GPU has (issue 8) */
    out->memory_used = v->mem_used < g->desc.memory_total ? v->mem_used : g->desc.memory_total;
    out->memory_reserved = v->mem_reserved;
    out->procs = v->procs;
    out->created = v->created;
    out->memory_real = v->mem_real;
    out->memory_unmanaged = v->mem_unmanaged;
    out->unmanaged_procs = v->procs_unmanaged;
}

void qa_host_gpu_record(qa_host_t *self, size_t i, qp_gpu_t *out)
{
    const qa_gpu_t *g = &self->gpus[i];
    memset(out, 0, sizeof *out);
    out->index = (int)g->desc.index;
    snprintf(out->uuid, sizeof out->uuid, "%s", g->desc.uuid);
    snprintf(out->name, sizeof out->name, "%s", g->desc.name);
    out->memory_total_mb = g->desc.memory_total / QP_MIB;
    out->memory_used_mb = g->memory_used / QP_MIB;
    out->memory_reserved_mb = g->memory_reserved_mb;
    out->memory_util =
        g->desc.memory_total ? 100.0 * (double)g->memory_used / (double)g->desc.memory_total : 0;
    out->util = g->util;
    out->sms = g->desc.sms;
    out->cuda_cores = g->desc.cuda_cores;
    out->share_reserved = g->share_reserved;
    out->vgpus = g->nvgpus;
    out->leased = g->leased;
    out->hung = g->hung;
    out->memory_unmanaged_mb = g->memory_unmanaged / QP_MIB;
    out->unmanaged_procs = g->procs_unmanaged;
}

void qa_host_totals(qa_host_t *self, qp_totals_t *out)
{
    uint64_t used[QA_MAX_GPUS] = {0}; /* per GPU; each report is at most its memory */
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < self->nvgpus; i++) {
        const qa_vgpu_t *v = self->vgpus[i];
        out->vgpus_total++;
        out->vgpus_active += v->procs > 0;
        out->memory_reserved_mb += v->memory_mb;
        out->memory_real_mb += v->mem_real / QP_MIB;
        used[v->gpu] += v->mem_used;
    }
    for (size_t g = 0; g < self->ngpus; g++) {
        uint64_t most = self->gpus[g].desc.memory_total;
        out->memory_used_mb += (used[g] < most ? used[g] : most) / QP_MIB;
    }
}

void qa_host_limits(qa_host_t *self, const qa_vgpu_t *v, qp_limits_t *out)
{
    const qa_gpu_t *g = &self->gpus[v->gpu];
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", v->id);
    out->gpu = (int)g->desc.index;
    snprintf(out->gpu_uuid, sizeof out->gpu_uuid, "%s", g->desc.uuid);
    out->memory_quota = v->memory_mb * QP_MIB;
    out->share = v->share;
    out->limit = v->limit;
}
