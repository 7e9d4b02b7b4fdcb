/* history.c - rings of utilisation samples, per vGPU and per GPU. One thread at a time
 * (see history.h). */
#include "arbiter/history.h"

#include "arbiter/textbuf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define N QA_HISTORY_SAMPLES
#define ABSENT 0xffff /* no sample: the vGPU did not exist then */

/* Percent 0..100 kept in hundredths: two bytes a sample. */
static uint16_t pack(double percent)
{
    if (!(percent > 0))
        return 0;
    return percent >= 100 ? 10000 : (uint16_t)(percent * 100 + 0.5);
}

struct series {
    char id[QP_ID_LEN];
    char vm[QP_VM_LEN];
    int gpu;          /* index of its GPU in the latest sample it had */
    uint64_t last;    /* number of the latest sample it had */
    uint16_t ring[N]; /* sample k at k % N; ABSENT where it had none */
};

struct gpu_series {
    int index;
    uint16_t util[N];   /* NVML's, hundredths of a percent */
    uint16_t leased[N]; /* under compute lease */
};

struct qa_history {
    uint64_t last;             /* number of the newest sample, 0 before the first */
    double times[N];           /* unix seconds of sample k at k % N */
    struct series **series;    /* owned, each owned; in the order they first appeared */
    size_t nseries, capseries; /* used / allocated entries */
    size_t *slots;             /* owned hash table: index into series + 1, 0 = free */
    size_t nslots;             /* a power of two, at least twice nseries */
    struct gpu_series *gpus;   /* owned */
    size_t ngpus;
};

qa_history_t *qa_history_new(void)
{
    return calloc(1, sizeof(qa_history_t));
}

void qa_history_destroy(qa_history_t **self_p)
{
    qa_history_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nseries; i++)
        free(self->series[i]);
    free(self->series);
    free(self->slots);
    free(self->gpus);
    free(self);
    *self_p = NULL;
}

uint64_t qa_history_last(const qa_history_t *self)
{
    return self->last;
}

/* FNV-1a of a vGPU id. */
static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

/* The slot holding id, or the free slot where it would go. */
static size_t *slot_of(const qa_history_t *self, const char *id)
{
    size_t mask = self->nslots - 1;
    for (size_t i = hash(id) & mask;; i = (i + 1) & mask) {
        size_t *s = &self->slots[i];
        if (!*s || strcmp(self->series[*s - 1]->id, id) == 0)
            return s;
    }
}

/* Rebuilds the table for the series there are, with room for want of them. */
static int rehash(qa_history_t *self, size_t want)
{
    size_t n = 64;
    while (n < 2 * want)
        n *= 2;
    size_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    free(self->slots);
    self->slots = slots;
    self->nslots = n;
    for (size_t i = 0; i < self->nseries; i++)
        *slot_of(self, self->series[i]->id) = i + 1;
    return 0;
}

static struct series *find_or_add(qa_history_t *self, const qp_info_t *v)
{
    if (2 * (self->nseries + 1) > self->nslots && rehash(self, 2 * (self->nseries + 1)) < 0)
        return NULL;
    size_t *slot = slot_of(self, v->id);
    if (*slot)
        return self->series[*slot - 1];
    if (self->nseries == self->capseries) {
        size_t cap = self->capseries ? self->capseries * 2 : 64;
        struct series **a = realloc(self->series, cap * sizeof *a);
        if (!a)
            return NULL;
        self->series = a;
        self->capseries = cap;
    }
    struct series *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    memcpy(s->id, v->id, sizeof s->id);
    memset(s->ring, 0xff, sizeof s->ring); /* ABSENT everywhere */
    s->last = 0;
    self->series[self->nseries++] = s;
    *slot = self->nseries;
    return s;
}

/* Drops the series whose every sample is older than the ring, keeping the others'
 * order. */
static void drop_aged(qa_history_t *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->nseries; i++) {
        struct series *s = self->series[i];
        if (s->last + N <= self->last)
            free(s);
        else
            self->series[kept++] = s;
    }
    if (kept == self->nseries)
        return;
    self->nseries = kept;
    if (rehash(self, kept) < 0) { /* cannot happen often: keep going without a table */
        free(self->slots);
        self->slots = NULL;
        self->nslots = 0;
    }
}

int qa_history_add(qa_history_t *self, const qa_view_t *view)
{
    uint64_t k = ++self->last;
    size_t at = k % N;
    self->times[at] = view->taken_unix;
    if (view->ngpus != self->ngpus) { /* the first sample: GPUs never change after it */
        struct gpu_series *g = calloc(view->ngpus ? view->ngpus : 1, sizeof *g);
        if (!g)
            return -ENOMEM;
        free(self->gpus);
        self->gpus = g;
        self->ngpus = view->ngpus;
    }
    for (size_t i = 0; i < self->ngpus; i++) {
        self->gpus[i].index = view->gpus[i].rec.index;
        self->gpus[i].util[at] = pack(view->gpus[i].rec.util);
        self->gpus[i].leased[at] = pack(view->gpus[i].rec.leased);
    }
    /* Every series loses its old sample in this slot; the present ones get a new one. */
    for (size_t i = 0; i < self->nseries; i++)
        self->series[i]->ring[at] = ABSENT;
    int rc = 0;
    for (size_t i = 0; i < view->nvgpus; i++) {
        const qp_info_t *v = &view->vgpus[i].info;
        struct series *s = find_or_add(self, v);
        if (!s) {
            rc = -ENOMEM;
            continue;
        }
        memcpy(s->vm, v->vm, sizeof s->vm);
        s->gpu = v->gpu;
        s->last = k;
        s->ring[at] = pack(v->util);
    }
    drop_aged(self);
    return rc;
}

static void put_value(qa_buf_t *b, uint16_t v, bool comma)
{
    if (comma)
        qa_buf_add(b, ",", 1);
    if (v == ABSENT)
        qa_buf_add(b, "null", 4);
    else if (v % 100 == 0)
        qa_buf_printf(b, "%u", v / 100);
    else
        qa_buf_printf(b, "%u.%02u", v / 100, v % 100);
}

static void put_ring(qa_buf_t *b, const uint16_t *ring, uint64_t first, uint64_t last)
{
    qa_buf_add(b, "[", 1);
    for (uint64_t k = first; k <= last; k++)
        put_value(b, ring[k % N], k != first);
    qa_buf_add(b, "]", 1);
}

int qa_history_render(const qa_history_t *self, uint64_t since, char **out, size_t *len)
{
    uint64_t last = self->last;
    uint64_t oldest = last >= N ? last - N + 1 : 1;
    uint64_t first = since + 1 > oldest ? since + 1 : oldest;
    qa_buf_t b;
    qa_buf_init(&b, 256 + (last >= first ? last - first + 1 : 0) * (self->nseries + 1) * 6);
    qa_buf_printf(&b, "{\"step_s\":1,\"first\":%llu,\"last\":%llu,\"times\":[",
                  (unsigned long long)first, (unsigned long long)last);
    for (uint64_t k = first; k <= last; k++)
        qa_buf_printf(&b, "%s%.3f", k == first ? "" : ",", self->times[k % N]);
    qa_buf_puts(&b, "],\"gpus\":[");
    for (size_t i = 0; i < self->ngpus; i++) {
        qa_buf_printf(&b, "%s{\"index\":%d,\"util\":", i ? "," : "", self->gpus[i].index);
        put_ring(&b, self->gpus[i].util, first, last);
        qa_buf_puts(&b, ",\"leased\":");
        put_ring(&b, self->gpus[i].leased, first, last);
        qa_buf_puts(&b, "}");
    }
    qa_buf_puts(&b, "],\"vgpus\":[");
    bool any = false;
    for (size_t i = 0; i < self->nseries; i++) {
        const struct series *s = self->series[i];
        if (s->last < first)
            continue; /* nothing in the range asked for */
        qa_buf_puts(&b, any ? ",{\"id\":" : "{\"id\":");
        any = true;
        qa_buf_json_string(&b, s->id);
        qa_buf_puts(&b, ",\"vm\":");
        qa_buf_json_string(&b, s->vm);
        qa_buf_printf(&b, ",\"gpu\":%d,\"util\":", s->gpu);
        put_ring(&b, s->ring, first, last);
        qa_buf_puts(&b, "}");
    }
    qa_buf_puts(&b, "]}");
    return qa_buf_take(&b, out, len);
}
