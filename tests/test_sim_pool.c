/* test_sim_pool.c - memory pools and stream-ordered allocation: pool-reserved memory is
 * used device memory, freed memory stays reserved up to the release threshold and the
 * rest goes back at synchronisation, the pool attributes tell it all. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <string.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

static uint64_t attr(CUmemoryPool p, CUmemPool_attribute a)
{
    cuuint64_t v = 12345;
    CU_OK(cuMemPoolGetAttribute(p, a, &v));
    return v;
}

Test(sim_pool, stream_ordered_memory_counts_and_goes_back_at_synchronisation)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUstream s;
    CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUmemoryPool pool;
    CU_OK(cuDeviceGetDefaultMemPool(&pool, 0));
    CUdeviceptr p;
    CU_OK(cuMemAllocAsync(&p, 100 * MiB + 1, s));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 102 * MiB, "reserved in 2 MiB granules");
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 102 * MiB);
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 102 * MiB);

    CU_OK(cuMemsetD8Async(p, 9, 100 * MiB + 1, s));
    unsigned char b;
    CU_OK(cuMemcpyDtoHAsync(&b, p + 100 * MiB, 1, s));
    CU_OK(cuMemFreeAsync(p, s));
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 0);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 102 * MiB, "still reserved until a sync");
    CU_OK(cuStreamSynchronize(s));
    cr_assert_eq(b, 9);
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 0);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX, "released at the sync: threshold 0");
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), 102 * MiB);
    cuuint64_t zero = 0;
    CU_OK(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH, &zero));
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH), 0);
    CU_OK(cuStreamDestroy(s));
}

Test(sim_pool, a_pool_keeps_freed_memory_up_to_its_release_threshold)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUmemPoolProps props = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED,
                            .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    CUmemoryPool pool;
    CU_OK(cuMemPoolCreate(&pool, &props));
    cuuint64_t threshold = 64 * MiB;
    CU_OK(cuMemPoolSetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &threshold));
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD), 64 * MiB);

    CUdeviceptr a, b, c;
    CU_OK(cuMemAllocFromPoolAsync(&a, 32 * MiB, pool, NULL));
    CU_OK(cuMemAllocFromPoolAsync(&b, 32 * MiB, pool, NULL));
    CU_OK(cuMemAllocFromPoolAsync(&c, 32 * MiB, pool, NULL));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 96 * MiB);
    CU_OK(cuMemFreeAsync(a, NULL));
    CU_OK(cuMemFreeAsync(b, NULL));
    CU_OK(cuMemFreeAsync(c, NULL));
    CU_OK(cuCtxSynchronize());
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 64 * MiB);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - 64 * MiB, "64 MiB kept, 32 MiB released");

    /* Kept memory is reused without a new reservation. */
    CU_OK(cuMemAllocFromPoolAsync(&a, 20 * MiB, pool, NULL));
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 64 * MiB);
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 32 * MiB);
    CU_OK(cuMemFreeAsync(a, NULL));
    CU_OK(cuMemPoolTrimTo(pool, 0));
    cr_assert_eq(attr(pool, CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT), 0);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX);
    CU_OK(cuMemPoolDestroy(pool));
    cr_assert_eq(cuMemPoolGetAttribute(pool, CU_MEMPOOL_ATTR_RELEASE_THRESHOLD, &threshold),
                 CUDA_ERROR_INVALID_VALUE);
}

Test(sim_pool, pools_run_out_at_device_capacity)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUdeviceptr a, b;
    CU_OK(cuMemAllocAsync(&a, 1 * GiB - SIM_CTX - 100 * MiB, NULL));
    cr_assert_eq(cuMemAllocAsync(&b, 200 * MiB, NULL), CUDA_ERROR_OUT_OF_MEMORY);
    CUdeviceptr plain;
    cr_assert_eq(cuMemAlloc(&plain, 200 * MiB), CUDA_ERROR_OUT_OF_MEMORY,
                 "pool memory is used device memory");
    CU_OK(cuMemFree(a)); /* cuMemFree takes stream-ordered memory too */
    CU_OK(cuCtxSynchronize());
    CU_OK(cuMemAlloc(&plain, 200 * MiB));
}

Test(sim_pool, the_device_pool_can_be_replaced)
{
    qt_sim_private("A:1GiB:4,B:1GiB:4");
    sim_up(0);
    CUmemoryPool def, cur, mine, other;
    CU_OK(cuDeviceGetDefaultMemPool(&def, 0));
    CU_OK(cuDeviceGetMemPool(&cur, 0));
    cr_assert_eq(cur, def);
    CUmemPoolProps props = {.allocType = CU_MEM_ALLOCATION_TYPE_PINNED,
                            .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = 0}};
    CU_OK(cuMemPoolCreate(&mine, &props));
    props.location.id = 1;
    CU_OK(cuMemPoolCreate(&other, &props));
    cr_assert_eq(cuDeviceSetMemPool(0, other), CUDA_ERROR_INVALID_VALUE, "wrong device");
    CU_OK(cuDeviceSetMemPool(0, mine));
    CU_OK(cuDeviceGetMemPool(&cur, 0));
    cr_assert_eq(cur, mine);
    CUdeviceptr p;
    CU_OK(cuMemAllocAsync(&p, 1 * MiB, NULL));
    cr_assert_eq(attr(mine, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 2 * MiB);
    cr_assert_eq(attr(def, CU_MEMPOOL_ATTR_USED_MEM_CURRENT), 0);
    CUmemoryPool owner;
    CU_OK(cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, p));
    cr_assert_eq(owner, mine);
    cr_assert_eq(cuMemPoolDestroy(def), CUDA_ERROR_INVALID_VALUE, "the default pool stays");
    props.location.type = CU_MEM_LOCATION_TYPE_HOST;
    cr_assert_eq(cuMemPoolCreate(&other, &props), CUDA_ERROR_INVALID_VALUE);
    CU_OK(cuMemFreeAsync(p, NULL));
    cr_assert_eq(cuMemFreeAsync(p, NULL), CUDA_ERROR_INVALID_VALUE, "freed twice");
}
