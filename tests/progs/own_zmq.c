/* own_zmq.c - an application that brings its own libzmq (and so libstdc++): it checks
 * that the libzmq it links is the one it gets, sends a message through it, then
 * allocates GPU memory. Prints "zmq MAJOR.MINOR.PATCH", "exchange 0|1",
 * "alloc MiB RESULT" for each size given in MiB on the command line. */
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static int exchange(void)
{
    void *ctx = zmq_ctx_new();
    void *a = zmq_socket(ctx, ZMQ_PAIR), *b = zmq_socket(ctx, ZMQ_PAIR);
    char buf[16] = "";
    int ok = zmq_bind(a, "inproc://own") == 0 && zmq_connect(b, "inproc://own") == 0 &&
             zmq_send(b, "hello", 5, 0) == 5 && zmq_recv(a, buf, sizeof buf, 0) == 5 &&
             memcmp(buf, "hello", 5) == 0;
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    int major, minor, patch;
    zmq_version(&major, &minor, &patch);
    printf("zmq %d.%d.%d\n", major, minor, patch);
    printf("exchange %d\n", exchange());
    CUcontext ctx;
    CUdevice dev;
    if (cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
        cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS ||
        cuCtxSetCurrent(ctx) != CUDA_SUCCESS) {
        printf("init failed\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        CUdeviceptr p;
        size_t mib = strtoul(argv[i], NULL, 10);
        printf("alloc %zu %d\n", mib, (int)cuMemAlloc(&p, mib << 20));
    }
    fflush(stdout);
    return 0;
}
