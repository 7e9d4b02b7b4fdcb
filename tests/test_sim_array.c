/* test_sim_array.c - CUDA arrays and mipmapped arrays occupy device memory, exactly
 * what their *GetMemoryRequirements report (the shim charges by those). */
#include <criterion/criterion.h>
#include <cuda.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

Test(sim_array, an_array_occupies_what_its_requirements_say)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUDA_ARRAY_DESCRIPTOR d = {
        .Width = 1000, .Height = 600, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4};
    CUarray a;
    CU_OK(cuArrayCreate(&a, &d));
    CUDA_ARRAY_MEMORY_REQUIREMENTS req;
    CU_OK(cuArrayGetMemoryRequirements(&req, a, 0));
    cr_assert_geq(req.size, 1000 * 600 * 16, "at least its texels");
    cr_assert_gt(req.alignment, 0);
    cr_assert_eq(req.size % req.alignment, 0);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - req.size);
    CUDA_ARRAY_DESCRIPTOR back;
    CU_OK(cuArrayGetDescriptor(&back, a));
    cr_assert_eq(back.Width, 1000);
    cr_assert_eq(back.Height, 600);
    cr_assert_eq(back.Format, CU_AD_FORMAT_FLOAT);
    cr_assert_eq(back.NumChannels, 4);
    CU_OK(cuArrayDestroy(a));
    cr_assert_eq(sim_free_bytes(), 1 * GiB);
    cr_assert_eq(cuArrayDestroy(a), CUDA_ERROR_INVALID_HANDLE);
}

Test(sim_array, three_dimensional_and_layered_arrays)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUDA_ARRAY3D_DESCRIPTOR d = {.Width = 256,
                                 .Height = 256,
                                 .Depth = 64,
                                 .Format = CU_AD_FORMAT_UNSIGNED_INT8,
                                 .NumChannels = 1};
    CUarray a, l;
    CU_OK(cuArray3DCreate(&a, &d));
    d.Flags = CUDA_ARRAY3D_LAYERED;
    d.Depth = 8;
    CU_OK(cuArray3DCreate(&l, &d));
    CUDA_ARRAY_MEMORY_REQUIREMENTS ra, rl;
    CU_OK(cuArrayGetMemoryRequirements(&ra, a, 0));
    CU_OK(cuArrayGetMemoryRequirements(&rl, l, 0));
    cr_assert_geq(ra.size, 256 * 256 * 64);
    cr_assert_geq(rl.size, 256 * 256 * 8);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - ra.size - rl.size);
    CUDA_ARRAY3D_DESCRIPTOR back;
    CU_OK(cuArray3DGetDescriptor(&back, l));
    cr_assert_eq(back.Depth, 8);
    cr_assert_eq(back.Flags, CUDA_ARRAY3D_LAYERED);
    CUDA_ARRAY_DESCRIPTOR flat;
    cr_assert_eq(cuArrayGetDescriptor(&flat, a), CUDA_ERROR_INVALID_VALUE, "a 3D array");
    cr_assert_eq(cuArrayGetMemoryRequirements(&ra, a, 3), CUDA_ERROR_INVALID_DEVICE);
}

Test(sim_array, bad_descriptors_are_refused_and_capacity_holds)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUarray a;
    CUDA_ARRAY_DESCRIPTOR d = {
        .Width = 0, .Height = 1, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
    cr_assert_eq(cuArrayCreate(&a, &d), CUDA_ERROR_INVALID_VALUE);
    d.Width = 16;
    d.NumChannels = 3;
    cr_assert_eq(cuArrayCreate(&a, &d), CUDA_ERROR_INVALID_VALUE);
    /* 16384 x 16384 x 4 channels x 4 bytes is 4 GiB: more than the device. */
    d = (CUDA_ARRAY_DESCRIPTOR){
        .Width = 16384, .Height = 16384, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4};
    cr_assert_eq(cuArrayCreate(&a, &d), CUDA_ERROR_OUT_OF_MEMORY);
}

Test(sim_array, a_mipmapped_array_is_the_sum_of_its_levels)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUDA_ARRAY3D_DESCRIPTOR d = {
        .Width = 1024, .Height = 1024, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
    CUmipmappedArray m;
    cr_assert_eq(cuMipmappedArrayCreate(&m, &d, 12), CUDA_ERROR_INVALID_VALUE, "11 at most");
    CU_OK(cuMipmappedArrayCreate(&m, &d, 11));
    CUDA_ARRAY_MEMORY_REQUIREMENTS req;
    CU_OK(cuMipmappedArrayGetMemoryRequirements(&req, m, 0));
    size_t sum = 0;
    for (unsigned l = 0; l < 11; l++) {
        CUarray level;
        CUDA_ARRAY_MEMORY_REQUIREMENTS r;
        CUDA_ARRAY3D_DESCRIPTOR ld;
        CU_OK(cuMipmappedArrayGetLevel(&level, m, l));
        CU_OK(cuArrayGetMemoryRequirements(&r, level, 0));
        CU_OK(cuArray3DGetDescriptor(&ld, level));
        cr_assert_eq(ld.Width, 1024u >> l);
        sum += r.size;
    }
    cr_assert_eq(req.size, sum);
    cr_assert_geq(req.size, 1024 * 1024 * 4 * 4 / 3);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - req.size);
    CUarray level0;
    CU_OK(cuMipmappedArrayGetLevel(&level0, m, 0));
    cr_assert_eq(cuArrayDestroy(level0), CUDA_ERROR_INVALID_VALUE, "levels go with the mipmap");
    CU_OK(cuMipmappedArrayDestroy(m));
    cr_assert_eq(sim_free_bytes(), 1 * GiB);
}

Test(sim_array, arrays_go_with_their_context)
{
    qt_sim_private("Small:1GiB:4");
    CU_OK(cuInit(0));
    CUcontext c;
    CU_OK(cuCtxCreate(&c, NULL, 0, 0));
    CUDA_ARRAY_DESCRIPTOR d = {
        .Width = 4096, .Height = 4096, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 1};
    CUarray a;
    CU_OK(cuArrayCreate(&a, &d));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - 64 * MiB);
    CU_OK(cuCtxDestroy(c));
    sim_up(0);
    cr_assert_eq(sim_free_bytes(), 1 * GiB);
}
