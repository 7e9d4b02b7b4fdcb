/* test_sim_copy.c - data integrity through every copy and memset of the simulated
 * driver, synchronous and asynchronous, and their refusals of bad pointers. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <stdint.h>
#include <string.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

static void fill(unsigned char *b, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (unsigned char)(x >> 16);
    }
}

Test(sim_copy, data_survives_host_device_host_round_trips_of_many_sizes)
{
    qt_sim_private(NULL);
    sim_up(0);
    static const size_t sizes[] = {1, 3, 4096, 65537, 3 * MiB + 5};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        unsigned char *a = malloc(n), *b = malloc(n);
        fill(a, n, (unsigned)k);
        CUdeviceptr d1, d2;
        CU_OK(cuMemAlloc(&d1, n + 64));
        CU_OK(cuMemAlloc(&d2, n + 64));
        CU_OK(cuMemcpyHtoD(d1 + 7, a, n));
        CU_OK(cuMemcpyDtoD(d2 + 3, d1 + 7, n));
        CU_OK(cuMemcpyDtoH(b, d2 + 3, n));
        cr_assert_eq(memcmp(a, b, n), 0, "size %zu", n);
        memset(b, 0, n);
        CU_OK(cuMemcpy((CUdeviceptr)b, d1 + 7, n)); /* unified addressing */
        cr_assert_eq(memcmp(a, b, n), 0, "cuMemcpy, size %zu", n);
        CU_OK(cuMemFree(d1));
        CU_OK(cuMemFree(d2));
        free(a);
        free(b);
    }
}

Test(sim_copy, async_copies_in_a_stream_keep_their_order)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUstream s;
    CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    enum { N = 1 << 16 };
    unsigned char *a, *b;
    CU_OK(cuMemAllocHost((void **)&a, N));
    CU_OK(cuMemAllocHost((void **)&b, N));
    fill(a, N, 42);
    CUdeviceptr d;
    CU_OK(cuMemAlloc(&d, N));
    CU_OK(cuMemsetD32Async(d, 0xdeadbeef, N / 4, s));
    CU_OK(cuMemcpyHtoDAsync(d, a, N / 2, s));
    CU_OK(cuMemcpyDtoDAsync(d + N / 2, d, N / 4, s));
    CU_OK(cuMemcpyDtoHAsync(b, d, N, s));
    CU_OK(cuStreamSynchronize(s));
    cr_assert_eq(memcmp(b, a, N / 2), 0);
    cr_assert_eq(memcmp(b + N / 2, a, N / 4), 0);
    uint32_t tail;
    memcpy(&tail, b + N - 4, 4);
    cr_assert_eq(tail, 0xdeadbeef);
    CU_OK(cuMemcpyAsync((CUdeviceptr)b, d + 8, 16, CU_STREAM_PER_THREAD));
    CU_OK(cuStreamSynchronize(CU_STREAM_PER_THREAD));
    cr_assert_eq(memcmp(b, a + 8, 16), 0);
    CU_OK(cuStreamDestroy(s));
}

Test(sim_copy, memsets_write_every_element_size)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUdeviceptr d;
    CU_OK(cuMemAlloc(&d, 4096));
    CU_OK(cuMemsetD8(d, 0x11, 4096));
    CU_OK(cuMemsetD16(d + 2, 0x2233, 3));
    CU_OK(cuMemsetD32(d + 100, 0x44556677, 2));
    unsigned char h[4096];
    CU_OK(cuMemcpyDtoH(h, d, sizeof h));
    cr_assert_eq(h[0], 0x11);
    cr_assert_eq(h[2], 0x33);
    cr_assert_eq(h[3], 0x22);
    cr_assert_eq(h[7], 0x22);
    cr_assert_eq(h[8], 0x11);
    uint32_t v;
    memcpy(&v, h + 104, 4);
    cr_assert_eq(v, 0x44556677);
    cr_assert_eq(h[108], 0x11);
    cr_assert_eq(cuMemsetD32(d + 1, 0, 1), CUDA_ERROR_INVALID_VALUE, "misaligned");
}

Test(sim_copy, two_dimensional_copies_and_memsets_respect_pitches)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUdeviceptr d;
    size_t pitch;
    CU_OK(cuMemAllocPitch(&d, &pitch, 100, 10, 4));
    CU_OK(cuMemsetD2D8(d, pitch, 0xee, pitch, 10));
    CU_OK(cuMemsetD2D32(d, pitch, 0x01020304, 20, 10)); /* 80 bytes of each row */
    unsigned char host[10][128], back[10][pitch];
    for (int r = 0; r < 10; r++)
        memset(host[r], r, sizeof host[r]);
    CUDA_MEMCPY2D c = {0};
    c.srcMemoryType = CU_MEMORYTYPE_HOST;
    c.srcHost = host;
    c.srcPitch = 128;
    c.srcXInBytes = 4;
    c.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    c.dstDevice = d;
    c.dstPitch = pitch;
    c.dstXInBytes = 80;
    c.WidthInBytes = 16;
    c.Height = 10;
    CU_OK(cuMemcpy2D(&c));
    CU_OK(cuMemcpyDtoH(back, d, sizeof back));
    for (int r = 0; r < 10; r++) {
        cr_assert_eq(back[r][0], 0x04);
        cr_assert_eq(back[r][79], 0x01);
        cr_assert_eq(back[r][80], r, "row %d", r);
        cr_assert_eq(back[r][95], r);
        cr_assert_eq(back[r][96], 0xee);
    }
    c.dstPitch = 8; /* narrower than a row */
    cr_assert_eq(cuMemcpy2D(&c), CUDA_ERROR_INVALID_VALUE);
}

Test(sim_copy, copies_outside_device_memory_are_refused)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUdeviceptr d;
    char h[64];
    CU_OK(cuMemAlloc(&d, 32));
    cr_assert_eq(cuMemcpyHtoD(d, h, 64), CUDA_ERROR_INVALID_VALUE, "past the end");
    cr_assert_eq(cuMemcpyDtoH(h, (CUdeviceptr)h, 8), CUDA_ERROR_INVALID_VALUE, "not device");
    cr_assert_eq(cuMemcpyHtoD(d, NULL, 8), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuMemsetD8(d + 16, 0, 17), CUDA_ERROR_INVALID_VALUE);
    CU_OK(cuMemcpyHtoD(d, h, 0));
}
