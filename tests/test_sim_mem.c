/* test_sim_mem.c - device memory on the simulated GPU: capacity shared by all processes
 * of a host, out-of-memory at capacity, memory of killed processes coming back, the
 * kinds of allocation and what the driver says about pointers. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

Test(sim_mem, capacity_is_shared_by_the_processes_of_a_host)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX, "this process's context costs memory");

    const char *args[] = {"alloc", "0", "314572800", NULL}; /* 300 MiB */
    qt_proc_t *other = sim_worker_start(args, NULL);
    sim_wait_line(other, "ready", 10000);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - 2 * SIM_CTX - 300 * MiB,
                 "another process's memory and context count");

    CUdeviceptr p;
    size_t left = 1 * GiB - 2 * SIM_CTX - 300 * MiB;
    cr_assert_eq(cuMemAlloc(&p, left + 1), CUDA_ERROR_OUT_OF_MEMORY);
    CU_OK(cuMemAlloc(&p, left - 24 * MiB));
    cr_assert_eq(sim_free_bytes(), 24 * MiB);

    /* And the other way round: a second process cannot take what this one holds. */
    const char *args2[] = {"alloc", "0", "10485760", NULL}; /* 10 MiB */
    qt_proc_t *third = sim_worker_start(args2, NULL);
    cr_assert_eq(qt_proc_wait(third, 10000), 1);
    cr_assert(strstr(qt_proc_stdout(third), "CUDA_ERROR_OUT_OF_MEMORY"), "%s",
              qt_proc_stdout(third));
    qt_proc_destroy(&third);
    qt_proc_destroy(&other);
    CU_OK(cuMemFree(p));
}

Test(sim_mem, allocations_fail_exactly_at_capacity)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    cr_assert_eq((1 * GiB - SIM_CTX) % (256 * MiB), 0, "the context leaves whole 256 MiB pieces");
    size_t n = (1 * GiB - SIM_CTX) / (256 * MiB);
    CUdeviceptr p[4];
    cr_assert_geq(n, 3);
    for (size_t i = 0; i < n; i++)
        CU_OK(cuMemAlloc(&p[i], 256 * MiB));
    cr_assert_eq(sim_free_bytes(), 0);
    CUdeviceptr q;
    cr_assert_eq(cuMemAlloc(&q, 1), CUDA_ERROR_OUT_OF_MEMORY);
    CU_OK(cuMemFree(p[2]));
    CU_OK(cuMemAlloc(&q, 256 * MiB));
    cr_assert_eq(cuMemAlloc(&p[2], 512), CUDA_ERROR_OUT_OF_MEMORY);
}

Test(sim_mem, a_killed_process_memory_returns)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    const char *args[] = {"alloc", "0", "419430400", NULL}; /* 400 MiB */
    qt_proc_t *w = sim_worker_start(args, NULL);
    sim_wait_line(w, "ready", 10000);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - 2 * SIM_CTX - 400 * MiB);
    qt_proc_kill(w, SIGKILL);
    cr_assert_eq(qt_proc_wait(w, 5000), 128 + SIGKILL);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX,
                 "the dead process's 400 MiB and its context are free again");
    CUdeviceptr p;
    CU_OK(cuMemAlloc(&p, 1 * GiB - SIM_CTX));
    qt_proc_destroy(&w);
}

Test(sim_mem, an_8_gib_gpu_costs_nothing_until_touched)
{
    qt_sim_private(NULL);
    sim_up(0);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    CUdeviceptr p;
    CU_OK(cuMemAlloc(&p, 8 * GiB - SIM_CTX)); /* all the context left */
    CU_OK(cuMemsetD8((CUdeviceptr)(p + 4 * GiB), 0x5a, 4096));
    unsigned char b;
    CU_OK(cuMemcpyDtoH(&b, p + 4 * GiB + 100, 1));
    cr_assert_eq(b, 0x5a);
    getrusage(RUSAGE_SELF, &after);
    cr_assert_lt(after.ru_maxrss - before.ru_maxrss, 64 * 1024, "RSS grew by %ld KiB",
                 after.ru_maxrss - before.ru_maxrss);
    CU_OK(cuMemFree(p));
}

Test(sim_mem, pitched_managed_and_host_memory)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    CUdeviceptr p;
    size_t pitch;
    CU_OK(cuMemAllocPitch(&p, &pitch, 1000, 100, 4));
    cr_assert_geq(pitch, 1000);
    cr_assert_eq(pitch % 512, 0);
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX - pitch * 100,
                 "a pitched allocation costs pitch x rows");
    cr_assert_eq(cuMemAllocPitch(&p, &pitch, 1000, 100, 3), CUDA_ERROR_INVALID_VALUE);

    CUdeviceptr m;
    size_t before = sim_free_bytes();
    CU_OK(cuMemAllocManaged(&m, 10 * MiB, CU_MEM_ATTACH_GLOBAL));
    cr_assert_eq(sim_free_bytes(), before - 10 * MiB, "managed memory counts");
    ((char *)m)[5] = 7; /* managed memory is usable from the host */
    cr_assert_eq(cuMemAllocManaged(&m, 1, 0), CUDA_ERROR_INVALID_VALUE);

    void *h, *h2;
    before = sim_free_bytes();
    CU_OK(cuMemAllocHost(&h, 64 * MiB));
    CU_OK(cuMemHostAlloc(&h2, 4096, CU_MEMHOSTALLOC_DEVICEMAP));
    cr_assert_eq(sim_free_bytes(), before, "page-locked host memory is not device memory");
    memset(h, 1, 4096);
    CUdeviceptr dh;
    unsigned flags;
    CU_OK(cuMemHostGetDevicePointer(&dh, h2, 0));
    cr_assert_eq((void *)dh, h2);
    CU_OK(cuMemHostGetFlags(&flags, h2));
    cr_assert_eq(flags, CU_MEMHOSTALLOC_DEVICEMAP);
    CU_OK(cuMemFreeHost(h));
    CU_OK(cuMemFreeHost(h2));
    cr_assert_eq(cuMemFreeHost(h), CUDA_ERROR_INVALID_VALUE);
}

Test(sim_mem, frees_of_what_was_not_allocated_are_refused)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUdeviceptr p;
    CU_OK(cuMemAlloc(&p, 4096));
    cr_assert_eq(cuMemFree(p + 16), CUDA_ERROR_INVALID_VALUE);
    CU_OK(cuMemFree(p));
    cr_assert_eq(cuMemFree(p), CUDA_ERROR_INVALID_VALUE);
    CU_OK(cuMemFree(0)); /* free(NULL) semantics, as the real driver */
    CU_OK(cuMemFreeHost(NULL));
    cr_assert_eq(cuMemHostUnregister(NULL), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuMemAlloc(&p, 0), CUDA_ERROR_INVALID_VALUE);
}

Test(sim_mem, address_ranges_and_pointer_attributes)
{
    qt_sim_private(NULL);
    CUcontext ctx = sim_up(0);
    CUdeviceptr p, base;
    size_t size;
    CU_OK(cuMemAlloc(&p, 10000));
    CU_OK(cuMemGetAddressRange(&base, &size, p + 1234));
    cr_assert_eq(base, p);
    cr_assert_eq(size, 10000);
    int local;
    cr_assert_eq(cuMemGetAddressRange(&base, &size, (CUdeviceptr)&local), CUDA_ERROR_NOT_FOUND);

    unsigned type;
    CUcontext owner;
    int ordinal, managed;
    CU_OK(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, p + 8));
    cr_assert_eq(type, CU_MEMORYTYPE_DEVICE);
    CU_OK(cuPointerGetAttribute(&owner, CU_POINTER_ATTRIBUTE_CONTEXT, p));
    cr_assert_eq(owner, ctx);
    CU_OK(cuPointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, p));
    cr_assert_eq(ordinal, 0);
    CU_OK(cuPointerGetAttribute(&managed, CU_POINTER_ATTRIBUTE_IS_MANAGED, p));
    cr_assert_eq(managed, 0);
    cr_assert_eq(
        cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)&local),
        CUDA_ERROR_INVALID_VALUE);

    CUpointer_attribute attrs[] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                   CU_POINTER_ATTRIBUTE_RANGE_SIZE};
    size_t range = 0;
    type = 99;
    void *data[] = {&type, &range};
    CU_OK(cuPointerGetAttributes(2, attrs, data, p));
    cr_assert_eq(type, CU_MEMORYTYPE_DEVICE);
    cr_assert_eq(range, 10000);
    CU_OK(cuPointerGetAttributes(2, attrs, data, (CUdeviceptr)&local));
    cr_assert_eq(type, 0, "unknown memory reads as type 0");
}

Test(sim_mem, registered_host_memory_is_known_but_not_device_memory)
{
    qt_sim_private("Small:1GiB:4");
    sim_up(0);
    static char buf[8192];
    CU_OK(cuMemHostRegister(buf, sizeof buf, CU_MEMHOSTREGISTER_DEVICEMAP));
    cr_assert_eq(sim_free_bytes(), 1 * GiB - SIM_CTX);
    cr_assert_eq(cuMemHostRegister(buf + 100, 10, 0), CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
    CUdeviceptr d;
    CU_OK(cuMemHostGetDevicePointer(&d, buf + 5, 0));
    cr_assert_eq((void *)d, buf + 5);
    unsigned type;
    CU_OK(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)buf));
    cr_assert_eq(type, CU_MEMORYTYPE_HOST);
    cr_assert_eq(cuMemFreeHost(buf), CUDA_ERROR_INVALID_VALUE, "not the driver's to free");
    CU_OK(cuMemHostUnregister(buf));
    cr_assert_eq(cuMemHostUnregister(buf), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
    buf[0] = 1; /* still the application's */
}
