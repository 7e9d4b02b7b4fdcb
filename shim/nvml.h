/* nvml.h - NVML as a vGPU's workload sees it (the hooks are in nvml.c): one device,
 * index 0, the vGPU's GPU, whose memory is the quota. State: the GPU's NVML handle,
 * found once (again after a move) and then read lock-free, nvml.c's own. Threads: any. */
#ifndef QS_NVML_H
#define QS_NVML_H

/* The vGPU moved to another GPU (shim/device.h): the handle is found again, by the new
 * UUID, at the next NVML call; the old one, if the application kept it, still shows the
 * vGPU's memory and index 0 (its other calls reach the old GPU: NVML does not move). */
void qs_nvml_moved(void);

/* In a fork child: a new lock (the handle stays: NVML's state is copied with the
 * process). */
void qs_nvml_reset_after_fork(void);

#endif
