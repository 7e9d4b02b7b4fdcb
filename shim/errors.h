/* errors.h - the one place where the shim's internal error codes become the driver's and
 * NVML's. Inside, functions return 0 or a negative errno; hooks answer with these. */
#ifndef QS_ERRORS_H
#define QS_ERRORS_H

#include "shim/cuda.h"

/* 0 -> CUDA_SUCCESS; -ENOMEM, -EDQUOT (quota), -ENOTCONN (arbiter unreachable), -EACCES
 * (the arbiter refuses this process) -> CUDA_ERROR_OUT_OF_MEMORY; -ENODEV ->
 * CUDA_ERROR_INVALID_DEVICE; -EINVAL -> CUDA_ERROR_INVALID_VALUE; -ENOENT -> CUDA_ERROR_NOT_FOUND;
 * -ENOSYS (no such entry point in this driver) -> CUDA_ERROR_NOT_FOUND; anything else ->
 * CUDA_ERROR_UNKNOWN. */
CUresult qs_cu_error(int err);
/* The same for NVML: memory errors -> NVML_ERROR_MEMORY, -ENODEV -> NVML_ERROR_NOT_FOUND,
 * -EINVAL -> NVML_ERROR_INVALID_ARGUMENT, -ENOSYS -> NVML_ERROR_FUNCTION_NOT_FOUND,
 * -EACCES -> NVML_ERROR_NO_PERMISSION. */
nvmlReturn_t qs_nvml_error(int err);

#endif
