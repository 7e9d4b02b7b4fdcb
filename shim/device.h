/* device.h - the one device a vGPU's workload sees: ordinal 0, the GPU the vGPU lives on.
 *
 * The GPU is named by UUID: the arbiter's hello reply (LIMITS.gpu_uuid), else the
 * CUDA_VISIBLE_DEVICES that `qgpuctl run` set; after a move, the arbiter's `limits` push. Before the driver initialises, the shim sets
 * CUDA_VISIBLE_DEVICES to that UUID, whatever the workload put there, so the driver
 * enumerates that GPU alone; the hooks then guarantee a count of one and ordinal 0.
 * Threads: any; the mapping is made once under device.c's lock, then read lock-free.
 * State: device.c's own. */
#ifndef QS_DEVICE_H
#define QS_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "shim/cuda.h"

/* What is known of the vGPU's GPU (as seen by CUDA here, and by NVML in shim/nvml.c). */
enum { QS_DEV_UNKNOWN = 0, QS_DEV_MAPPED = 1, QS_DEV_NONE = 2 };

/* QS_DEV_MAPPED (qs_device() is the GPU), QS_DEV_NONE (it is not visible, or no UUID is
 * known), or QS_DEV_UNKNOWN (the driver is not initialised yet; try again later). */
int qs_device_state(void);
/* The vGPU's GPU as the driver names it; meaningful once qs_device_state() said
 * QS_DEV_MAPPED. */
CUdevice qs_device(void);
/* Whether dev is the vGPU's GPU. */
bool qs_device_is_ours(CUdevice dev);
/* The agent learnt the GPU's UUID from the arbiter (its hello reply or a `limits` push).
 * Before the driver is initialised it is the GPU to use. After, a different UUID means the
 * vGPU moved to another GPU with this process (docs/migration.md): the driver's ordinal
 * stays and names the new GPU now, so the device mapping holds; the UUID the shim shows,
 * NVML's handle and the CUDA_VISIBLE_DEVICES entry (for children it starts) follow. */
void qs_device_set_uuid(const char *uuid);
/* The UUID in use (the arbiter's, else the environment's), copied into out (cap bytes);
 * empty when none is known. */
void qs_device_uuid(char *out, size_t cap);
/* In a fork child: a new lock (the mapping stays: the driver's state is the parent's). */
void qs_device_reset_after_fork(void);

#endif
