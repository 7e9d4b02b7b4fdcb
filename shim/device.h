/* device.h - the one device a vGPU's workload sees: ordinal 0, the GPU the vGPU lives on.
 *
 * The GPU is named by UUID: the arbiter's hello reply (LIMITS.gpu_uuid), else the
 * CUDA_VISIBLE_DEVICES that `qgpuctl run` set. Before the driver initialises, the shim sets
 * CUDA_VISIBLE_DEVICES to that UUID, whatever the workload put there, so the driver
 * enumerates that GPU alone; the hooks then guarantee a count of one and ordinal 0.
 * Threads: any; the mapping is made once under qs_g.dev_lock, then read lock-free. */
#ifndef QS_DEVICE_H
#define QS_DEVICE_H

#include <stdbool.h>

#include "shim/state.h"

/* QS_DEV_MAPPED (qs_g.dev is the GPU), QS_DEV_NONE (it is not visible, or no UUID is
 * known), or QS_DEV_UNKNOWN (the driver is not initialised yet; try again later). */
int qs_device_state(void);
/* Whether dev is the vGPU's GPU. */
bool qs_device_is_ours(CUdevice dev);
/* The agent learnt the GPU's UUID from the arbiter: use it if nothing is mapped yet. */
void qs_device_set_uuid(const char *uuid);
/* The UUID in use (the arbiter's, else the environment's), copied into out (cap bytes);
 * empty when none is known. */
void qs_device_uuid(char *out, size_t cap);

#endif
