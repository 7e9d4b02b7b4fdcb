/* test_sim_array.c - CUDA arrays and mipmapped arrays occupy device memory by the layout
 * model in sim/README.md; only deferred-mapping arrays, which occupy none, answer
 * *GetMemoryRequirements, as in the real driver. */
#include <criterion/criterion.h>
#include <cuda.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

/* The layout model: rows of width x bpp rounded up to 512, h x d rows (each at least 1),
 * the whole rounded up to 64 KiB. */
static size_t model(size_t w, size_t h, size_t d, size_t bpp)
{
    size_t row = (w * bpp + 511) / 512 * 512;
    size_t bytes = row * (h ? h : 1) * (d ? d : 1);
    return (bytes + 65535) / 65536 * 65536;
}

Test(sim_array, an_array_occupies_its_layout_and_does_not_answer_requirements)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUDA_ARRAY_DESCRIPTOR d = {
        .Width = 1000, .Height = 600, .Format = CU_AD_FORMAT_FLOAT, .NumChannels = 4};
    CUarray a;
    CU_OK(cuArrayCreate(&a, &d));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - model(1000, 600, 0, 16));
    CUDA_ARRAY_MEMORY_REQUIREMENTS req;
    cr_assert_eq(cuArrayGetMemoryRequirements(&req, a, 0), CUDA_ERROR_INVALID_VALUE,
                 "only for deferred-mapping arrays");
    CUDA_ARRAY_DESCRIPTOR back;
    CU_OK(cuArrayGetDescriptor(&back, a));
    cr_assert_eq(back.Width, 1000);
    cr_assert_eq(back.Height, 600);
    cr_assert_eq(back.Format, CU_AD_FORMAT_FLOAT);
    cr_assert_eq(back.NumChannels, 4);
    CU_OK(cuArrayDestroy(a));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX);
    cr_assert_eq(cuArrayDestroy(a), CUDA_ERROR_INVALID_HANDLE);
}

Test(sim_array, a_deferred_mapping_array_occupies_nothing_and_says_what_it_needs)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUDA_ARRAY3D_DESCRIPTOR d = {.Width = 1000,
                                 .Height = 600,
                                 .Format = CU_AD_FORMAT_FLOAT,
                                 .NumChannels = 4,
                                 .Flags = CUDA_ARRAY3D_DEFERRED_MAPPING};
    CUarray a;
    CU_OK(cuArray3DCreate(&a, &d));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX, "no memory of its own");
    CUDA_ARRAY_MEMORY_REQUIREMENTS req;
    CU_OK(cuArrayGetMemoryRequirements(&req, a, 0));
    cr_assert_eq(req.size, model(1000, 600, 0, 16));
    cr_assert_gt(req.alignment, 0);
    cr_assert_eq(req.size % req.alignment, 0);
    cr_assert_eq(cuArrayGetMemoryRequirements(&req, a, 3), CUDA_ERROR_INVALID_DEVICE);
    CU_OK(cuArrayDestroy(a));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX);
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
    cr_assert_eq(sim_free_bytes(),
                 1 * GiB - SIM_CTX - model(256, 256, 64, 1) - model(256, 256, 8, 1));
    CUDA_ARRAY3D_DESCRIPTOR back;
    CU_OK(cuArray3DGetDescriptor(&back, l));
    cr_assert_eq(back.Depth, 8);
    cr_assert_eq(back.Flags, CUDA_ARRAY3D_LAYERED);
    CUDA_ARRAY_DESCRIPTOR flat;
    cr_assert_eq(cuArrayGetDescriptor(&flat, a), CUDA_ERROR_INVALID_VALUE, "a 3D array");
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
    CUmipmappedArray m, deferred;
    cr_assert_eq(cuMipmappedArrayCreate(&m, &d, 12), CUDA_ERROR_INVALID_VALUE, "11 at most");
    CU_OK(cuMipmappedArrayCreate(&m, &d, 11));
    size_t sum = 0;
    for (unsigned l = 0; l < 11; l++) {
        CUarray level;
        CUDA_ARRAY3D_DESCRIPTOR ld;
        CU_OK(cuMipmappedArrayGetLevel(&level, m, l));
        CU_OK(cuArray3DGetDescriptor(&ld, level));
        cr_assert_eq(ld.Width, 1024u >> l);
        sum += model(ld.Width, ld.Height, 0, 4);
    }
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - sum);
    CUDA_ARRAY_MEMORY_REQUIREMENTS req;
    cr_assert_eq(cuMipmappedArrayGetMemoryRequirements(&req, m, 0), CUDA_ERROR_INVALID_VALUE);
    d.Flags = CUDA_ARRAY3D_DEFERRED_MAPPING;
    CU_OK(cuMipmappedArrayCreate(&deferred, &d, 11));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - sum, "a deferred one occupies nothing");
    CU_OK(cuMipmappedArrayGetMemoryRequirements(&req, deferred, 0));
    cr_assert_eq(req.size, sum);
    CUarray level0;
    CU_OK(cuMipmappedArrayGetLevel(&level0, m, 0));
    cr_assert_eq(cuArrayDestroy(level0), CUDA_ERROR_INVALID_VALUE, "levels go with the mipmap");
    CU_OK(cuMipmappedArrayDestroy(m));
    CU_OK(cuMipmappedArrayDestroy(deferred));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX);
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
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 64 * MiB);
    CU_OK(cuCtxDestroy(c));
    sim_up(0);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX);
}
