/* sampler.c - periodic NVML sampling on its own thread. Threads: see sampler.h. */
#include "arbiter/sampler.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct qa_sampler {
    qa_nvml_t *nvml; /* borrowed */
    size_t ngpus;
    unsigned period_ms;
    pthread_t thread;
    pthread_mutex_t lock;     /* guards latest, round, kicked and stop */
    pthread_cond_t wake;      /* signalled to stop or to sample at once */
    qa_gpu_sample_t *latest;  /* owned, ngpus: the last published round */
    qa_gpu_sample_t *scratch; /* owned, ngpus: the sampler thread's own buffer */
    uint64_t round;           /* rounds published */
    bool kicked;              /* a round was asked for: start the next one at once */
    bool stop;
    int efd; /* owned: eventfd written after each published round */
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
        uint64_t one = 1;
        if (write(self->efd, &one, sizeof one) < 0) {
            /* EAGAIN only: the counter is full, the loop has a wake-up pending anyway */
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += self->period_ms / 1000;
        until.tv_nsec += (long)(self->period_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        while (!self->stop && !self->kicked &&
               pthread_cond_timedwait(&self->wake, &self->lock, &until) != ETIMEDOUT)
            ;
        self->kicked = false;
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
    self->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&self->lock, NULL);
    if (!self->latest || !self->scratch || self->efd < 0 ||
        pthread_create(&self->thread, NULL, sampler_main, self) != 0) {
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->wake);
        if (self->efd >= 0)
            close(self->efd);
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
    close(self->efd);
    free(self->latest);
    free(self->scratch);
    free(self);
    *self_p = NULL;
}

bool qa_sampler_take(qa_sampler_t *self, qa_gpu_sample_t *out, uint64_t *seen)
{
    bool fresh = false;
    uint64_t count;
    if (read(self->efd, &count, sizeof count) < 0) {
        /* EAGAIN: nothing new since the last read; the round counter decides below */
    }
    pthread_mutex_lock(&self->lock);
    if (self->round > *seen) {
        memcpy(out, self->latest, self->ngpus * sizeof *out);
        *seen = self->round;
        fresh = true;
    }
    pthread_mutex_unlock(&self->lock);
    return fresh;
}

int qa_sampler_fd(const qa_sampler_t *self)
{
    return self->efd;
}

void qa_sampler_kick(qa_sampler_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->kicked = true;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
}
