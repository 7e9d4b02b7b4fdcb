/* errors.c - maps internal errors to CUresult and nvmlReturn_t. Pure. */
#include "shim/errors.h"

#include <errno.h>

CUresult qs_cu_error(int err)
{
    switch (err) {
    case 0:
        return CUDA_SUCCESS;
    case -ENOMEM:
    case -EDQUOT:
    case -ENOTCONN:
    case -EACCES:
        return CUDA_ERROR_OUT_OF_MEMORY;
    case -ENODEV:
        return CUDA_ERROR_INVALID_DEVICE;
    case -EINVAL:
        return CUDA_ERROR_INVALID_VALUE;
    case -ENOENT:
    case -ENOSYS:
        return CUDA_ERROR_NOT_FOUND;
    default:
        return CUDA_ERROR_UNKNOWN;
    }
}

nvmlReturn_t qs_nvml_error(int err)
{
    switch (err) {
    case 0:
        return NVML_SUCCESS;
    case -ENOMEM:
    case -EDQUOT:
    case -ENOTCONN:
        return NVML_ERROR_MEMORY;
    case -EACCES:
        return NVML_ERROR_NO_PERMISSION;
    case -ENODEV:
    case -ENOENT:
        return NVML_ERROR_NOT_FOUND;
    case -EINVAL:
        return NVML_ERROR_INVALID_ARGUMENT;
    case -ENOSYS:
        return NVML_ERROR_FUNCTION_NOT_FOUND;
    default:
        return NVML_ERROR_UNKNOWN;
    }
}
