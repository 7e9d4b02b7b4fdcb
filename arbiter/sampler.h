/* sampler.h - a thread that samples every GPU through NVML at a fixed period, or at once
 * when asked, so that slow NVML calls (milliseconds on some drivers) never delay the loop.
 *
 * Threads: the sampler thread writes into its own buffer and publishes it under a
 * mutex, then makes its eventfd readable; the loop thread copies the latest published
 * round with qa_sampler_take and may ask for the next one early (qa_sampler_kick). */
#ifndef QA_SAMPLER_H
#define QA_SAMPLER_H

#include "arbiter/nvml.h"

#include <stdint.h>

typedef struct qa_sampler qa_sampler_t;

/* Starts sampling ngpus GPUs of nvml (borrowed: must outlive the sampler) every
 * period_ms. Returns NULL when the thread cannot start. */
qa_sampler_t *qa_sampler_start(qa_nvml_t *nvml, size_t ngpus, unsigned period_ms);
/* Stops the thread and frees *self_p; sets it to NULL. */
void qa_sampler_stop(qa_sampler_t **self_p);
/* Copies the latest round into out (ngpus entries) when it is newer than *seen, and
 * updates *seen. Returns true when out was filled. Empties the eventfd. */
bool qa_sampler_take(qa_sampler_t *self, qa_gpu_sample_t *out, uint64_t *seen);
/* A descriptor (an eventfd, the sampler's) that becomes readable when a round is
 * published, for the loop to watch. */
int qa_sampler_fd(const qa_sampler_t *self);
/* Starts a round now instead of at the end of the period; a round under way is finished
 * first and another one follows it, so the next round published after this call began
 * after it. */
void qa_sampler_kick(qa_sampler_t *self);

#endif
