/* sampler.c - periodic NVML sampling on its own thread. Threads: see sampler.h. */
#include "arbiter/sampler.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct qa_sampler {
    qa_nvml_t *nvml; /* borrowed */
    size_t ngpus;
    unsigned period_ms;
    pthread_t thread;
    pthread_mutex_t lock;     /* guards latest, round and stop */
    pthread_cond_t wake;      /* signalled to stop */
    qa_gpu_sample_t *latest;  /* owned, ngpus: the last published round */
    qa_gpu_sample_t *scratch; /* owned, ngpus: the sampler thread's own buffer */
    uint64_t round;           /* rounds published */
    bool stop;
};

static void *sampler_main(void *arg)
{
    qa_sampler_t *self = arg;
    pthread_mutex_lock(&self->lock);
    while (!self->stop) {
        pthread_mutex_unlock(&self->lock);
        for (size_t i = 0; i < self->ngpus; i++)
            qa_nvml_sample(self->nvml, (unsigned)i, &self->scratch[i]);
        pthread_mutex_lock(&self->lock);
        qa_gpu_sample_t *t = self->latest;
        self->latest = self->scratch;
        self->scratch = t;
        self->round++;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += self->period_ms / 1000;
        until.tv_nsec += (long)(self->period_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        while (!self->stop && pthread_cond_timedwait(&self->wake, &self->lock, &until) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

qa_sampler_t *qa_sampler_start(qa_nvml_t *nvml, size_t ngpus, unsigned period_ms)
{
    qa_sampler_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->nvml = nvml;
    self->ngpus = ngpus;
    self->period_ms = period_ms;
    self->latest = calloc(ngpus, sizeof *self->latest);
    self->scratch = calloc(ngpus, sizeof *self->scratch);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&self->lock, NULL);
    if (!self->latest || !self->scratch ||
        pthread_create(&self->thread, NULL, sampler_main, self) != 0) {
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->wake);
        free(self->latest);
        free(self->scratch);
        free(self);
        return NULL;
    }
    return self;
}

void qa_sampler_stop(qa_sampler_t **self_p)
{
    qa_sampler_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stop = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->thread, NULL);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->wake);
    free(self->latest);
    free(self->scratch);
    free(self);
    *self_p = NULL;
}

bool qa_sampler_take(qa_sampler_t *self, qa_gpu_sample_t *out, uint64_t *seen)
{
    bool fresh = false;
    pthread_mutex_lock(&self->lock);
    if (self->round > *seen) {
        memcpy(out, self->latest, self->ngpus * sizeof *out);
        *seen = self->round;
        fresh = true;
    }
    pthread_mutex_unlock(&self->lock);
    return fresh;
}
