/* test_sim_vmm.c - virtual memory management: physical allocations count from
 * cuMemCreate until released and unmapped, data is readable through every mapping. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <string.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

static CUmemAllocationProp prop(int dev)
{
    CUmemAllocationProp p = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                             .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = dev}};
    return p;
}

static void grant(CUdeviceptr va, size_t size, CUmemAccess_flags flags)
{
    CUmemAccessDesc d = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
                         .flags = flags};
    CU_OK(cuMemSetAccess(va, size, &d, 1));
}

Test(sim_vmm, the_granularity_is_2_mib)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUmemAllocationProp p = prop(0);
    size_t g = 0;
    CU_OK(cuMemGetAllocationGranularity(&g, &p, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    cr_assert_eq(g, 2 * MiB);
    CU_OK(cuMemGetAllocationGranularity(&g, &p, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
    cr_assert_eq(g, 2 * MiB);
    CUmemGenericAllocationHandle h;
    cr_assert_eq(cuMemCreate(&h, 3 * MiB, &p, 0), CUDA_ERROR_INVALID_VALUE, "not a multiple");
    p.location.id = 5;
    cr_assert_eq(cuMemCreate(&h, 2 * MiB, &p, 0), CUDA_ERROR_INVALID_VALUE);
}

Test(sim_vmm, memory_is_held_until_released_and_unmapped)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUmemAllocationProp p = prop(0);
    CUmemGenericAllocationHandle h;
    CU_OK(cuMemCreate(&h, 64 * MiB, &p, 0));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 64 * MiB, "charged at creation");
    CUdeviceptr va;
    CU_OK(cuMemAddressReserve(&va, 128 * MiB, 0, 0, 0));
    cr_assert_eq(va % (2 * MiB), 0);
    CU_OK(cuMemMap(va, 64 * MiB, 0, h, 0));
    CU_OK(cuMemMap(va + 64 * MiB, 64 * MiB, 0, h, 0)); /* the same memory twice */
    grant(va, 128 * MiB, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 64 * MiB, "mapping costs nothing more");

    char msg[] = "through the first mapping";
    CU_OK(cuMemcpyHtoD(va + 12345, msg, sizeof msg));
    char back[sizeof msg];
    CU_OK(cuMemcpyDtoH(back, va + 64 * MiB + 12345, sizeof back));
    cr_assert_str_eq(back, msg, "both mappings show the same bytes");
    unsigned long long flags;
    CUmemLocation loc = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0};
    CU_OK(cuMemGetAccess(&flags, &loc, va));
    cr_assert_eq(flags, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
    CUdeviceptr base;
    size_t size;
    CU_OK(cuMemGetAddressRange(&base, &size, va + 64 * MiB + 5));
    cr_assert_eq(base, va + 64 * MiB);
    cr_assert_eq(size, 64 * MiB);

    CU_OK(cuMemRelease(h));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 64 * MiB, "still mapped");
    CU_OK(cuMemUnmap(va, 64 * MiB));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 64 * MiB, "still mapped once");
    CU_OK(cuMemcpyDtoH(back, va + 64 * MiB + 12345, sizeof back));
    cr_assert_str_eq(back, msg);
    cr_assert_eq(cuMemcpyDtoH(back, va + 12345, sizeof back), CUDA_ERROR_INVALID_VALUE,
                 "an unmapped range is no memory");
    cr_assert_eq(cuMemAddressFree(va, 128 * MiB), CUDA_ERROR_INVALID_VALUE, "still mapped");
    CU_OK(cuMemUnmap(va + 64 * MiB, 64 * MiB));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX, "released and unmapped: gone");
    CU_OK(cuMemAddressFree(va, 128 * MiB));
}

Test(sim_vmm, a_released_handle_is_dead_but_its_mapping_lives_until_unmapped)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUmemAllocationProp p = prop(0);
    CUmemGenericAllocationHandle h, again;
    CU_OK(cuMemCreate(&h, 4 * MiB, &p, 0));
    CUdeviceptr va;
    CU_OK(cuMemAddressReserve(&va, 8 * MiB, 0, 0, 0));
    CU_OK(cuMemMap(va, 4 * MiB, 0, h, 0));
    grant(va, 4 * MiB, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
    CU_OK(cuMemRelease(h));
    cr_assert_eq(cuMemMap(va + 4 * MiB, 4 * MiB, 0, h, 0), CUDA_ERROR_INVALID_VALUE,
                 "a released handle maps nothing");
    cr_assert_eq(cuMemRelease(h), CUDA_ERROR_INVALID_VALUE, "nor is it released twice");
    CUmemAllocationProp got;
    cr_assert_eq(cuMemGetAllocationPropertiesFromHandle(&got, h), CUDA_ERROR_INVALID_VALUE);
    int word = 42, back = 0;
    CU_OK(cuMemcpyHtoD(va, &word, sizeof word));
    CU_OK(cuMemcpyDtoH(&back, va, sizeof back));
    cr_assert_eq(back, 42, "the mapping still works");
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 4 * MiB, "still held by its mapping");

    /* A retained handle is live again, and holds the memory past the unmap. */
    CU_OK(cuMemRetainAllocationHandle(&again, (void *)va));
    cr_assert_eq(again, h);
    CU_OK(cuMemUnmap(va, 4 * MiB));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 4 * MiB, "the retained handle holds it");
    CU_OK(cuMemMap(va, 4 * MiB, 0, again, 0));
    CU_OK(cuMemRelease(again));
    CU_OK(cuMemUnmap(va, 4 * MiB));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX, "released and unmapped: gone");
    CU_OK(cuMemAddressFree(va, 8 * MiB));
}

Test(sim_vmm, mappings_check_their_ranges_and_read_only_access_refuses_writes)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUmemAllocationProp p = prop(0);
    CUmemGenericAllocationHandle h, again;
    CU_OK(cuMemCreate(&h, 4 * MiB, &p, 0));
    CUdeviceptr va;
    CU_OK(cuMemAddressReserve(&va, 8 * MiB, 0, 0, 0));
    cr_assert_eq(cuMemMap(va, 8 * MiB, 0, h, 0), CUDA_ERROR_INVALID_VALUE, "larger than it");
    cr_assert_eq(cuMemMap(va, 2 * MiB, 4 * MiB, h, 0), CUDA_ERROR_INVALID_VALUE, "offset past it");
    CU_OK(cuMemMap(va, 4 * MiB, 0, h, 0));
    cr_assert_eq(cuMemMap(va + 2 * MiB, 2 * MiB, 0, h, 0), CUDA_ERROR_INVALID_VALUE, "overlap");
    CUmemAccessDesc d = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0},
                         .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    cr_assert_eq(cuMemSetAccess(va, 8 * MiB, &d, 1), CUDA_ERROR_INVALID_VALUE, "half unmapped");
    grant(va, 4 * MiB, CU_MEM_ACCESS_FLAGS_PROT_READWRITE);
    CU_OK(cuMemsetD32(va, 0x01020304, 1 * MiB));
    grant(va, 4 * MiB, CU_MEM_ACCESS_FLAGS_PROT_READ);
    uint32_t v;
    CU_OK(cuMemcpyDtoH(&v, va + 4096, 4));
    cr_assert_eq(v, 0x01020304);
    cr_assert_eq(cuMemsetD32(va, 0, 1), CUDA_ERROR_INVALID_VALUE, "read-only");
    CU_OK(cuMemRetainAllocationHandle(&again, (void *)(va + 100)));
    cr_assert_eq(again, h);
    CUmemAllocationProp got;
    CU_OK(cuMemGetAllocationPropertiesFromHandle(&got, h));
    cr_assert_eq(got.location.id, 0);
    CU_OK(cuMemRelease(again));
    CU_OK(cuMemRelease(h));
    CU_OK(cuMemUnmap(va, 4 * MiB));
    cr_assert_eq(cuMemRelease(h), CUDA_ERROR_INVALID_VALUE, "already gone");
    CU_OK(cuMemAddressFree(va, 8 * MiB));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX);
}

Test(sim_vmm, physical_memory_stops_at_capacity)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUmemAllocationProp p = prop(0);
    CUmemGenericAllocationHandle a, b;
    CU_OK(cuMemCreate(&a, 1 * GiB - SIM_CTX - 2 * MiB, &p, 0));
    cr_assert_eq(cuMemCreate(&b, 4 * MiB, &p, 0), CUDA_ERROR_OUT_OF_MEMORY);
    CU_OK(cuMemCreate(&b, 2 * MiB, &p, 0));
    CU_OK(cuMemRelease(a));
    CU_OK(cuMemRelease(b));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX);
}
