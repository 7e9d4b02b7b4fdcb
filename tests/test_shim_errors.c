/* test_shim_errors.c - every internal failure becomes the driver's or NVML's code in one
 * place: quota and unreachable arbiter alike read as out of memory. */
#include "shim/errors.c"

#include <criterion/criterion.h>

Test(shim_errors, quota_and_arbiter_failures_are_out_of_memory)
{
    cr_assert_eq(qs_cu_error(0), CUDA_SUCCESS);
    cr_assert_eq(qs_cu_error(-EDQUOT), CUDA_ERROR_OUT_OF_MEMORY);
    cr_assert_eq(qs_cu_error(-ENOTCONN), CUDA_ERROR_OUT_OF_MEMORY);
    cr_assert_eq(qs_cu_error(-EACCES), CUDA_ERROR_OUT_OF_MEMORY);
    cr_assert_eq(qs_cu_error(-ENOMEM), CUDA_ERROR_OUT_OF_MEMORY);
    cr_assert_eq(qs_cu_error(-ENOSYS), CUDA_ERROR_NOT_FOUND);
    cr_assert_eq(qs_cu_error(-ENODEV), CUDA_ERROR_INVALID_DEVICE);
    cr_assert_eq(qs_cu_error(-EINVAL), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(qs_cu_error(-EPIPE), CUDA_ERROR_UNKNOWN);
}

Test(shim_errors, nvml_gets_its_own_codes)
{
    cr_assert_eq(qs_nvml_error(0), NVML_SUCCESS);
    cr_assert_eq(qs_nvml_error(-EDQUOT), NVML_ERROR_MEMORY);
    cr_assert_eq(qs_nvml_error(-ENODEV), NVML_ERROR_NOT_FOUND);
    cr_assert_eq(qs_nvml_error(-EINVAL), NVML_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(qs_nvml_error(-ENOSYS), NVML_ERROR_FUNCTION_NOT_FOUND);
    cr_assert_eq(qs_nvml_error(-EACCES), NVML_ERROR_NO_PERMISSION);
    cr_assert_eq(qs_nvml_error(-EPIPE), NVML_ERROR_UNKNOWN);
}
