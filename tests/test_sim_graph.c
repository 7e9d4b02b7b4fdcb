/* test_sim_graph.c - stream capture builds a graph instead of running the work; an
 * instantiated graph runs its kernels, copies and memsets each time it is launched. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <string.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

static double ms_since(uint64_t t0)
{
    return (double)(qt_now_ns() - t0) / 1e6;
}

Test(sim_graph, a_captured_graph_runs_its_kernels_when_launched)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    CUstream s;
    CU_OK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUdeviceptr d;
    CU_OK(cuMemAlloc(&d, 64));
    CU_OK(cuMemsetD8(d, 0, 64));
    CU_OK(cuCtxSynchronize());
    static const char msg[] = "graph data";

    CU_OK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    CUstreamCaptureStatus status;
    CU_OK(cuStreamIsCapturing(s, &status));
    cr_assert_eq(status, CU_STREAM_CAPTURE_STATUS_ACTIVE);
    uint64_t t0 = qt_now_ns();
    for (int i = 0; i < 3; i++)
        CU_OK(sim_spin(spin, s, 20000000ull));
    CU_OK(cuMemcpyHtoDAsync(d, msg, sizeof msg, s));
    CU_OK(cuMemsetD8Async(d + 32, 0x7e, 4, s));
    cuuint64_t id;
    CUgraph building;
    const CUgraphNode *deps;
    size_t ndeps;
    CU_OK(cuStreamGetCaptureInfo(s, &status, &id, &building, &deps, NULL, &ndeps));
    cr_assert_eq(ndeps, 1);
    CUgraph g;
    CU_OK(cuStreamEndCapture(s, &g));
    cr_assert_eq(g, building);
    cr_assert_lt(ms_since(t0), 20, "capturing ran nothing");
    char back[64];
    CU_OK(cuMemcpyDtoH(back, d, sizeof back));
    cr_assert_eq(back[0], 0, "the captured copy did not run either");

    size_t n = 0;
    CU_OK(cuGraphGetNodes(g, NULL, &n));
    cr_assert_eq(n, 5);
    CUgraphNode nodes[5];
    CU_OK(cuGraphGetNodes(g, nodes, &n));
    CUgraphNodeType type;
    CU_OK(cuGraphNodeGetType(nodes[0], &type));
    cr_assert_eq(type, CU_GRAPH_NODE_TYPE_KERNEL);
    CU_OK(cuGraphNodeGetType(nodes[3], &type));
    cr_assert_eq(type, CU_GRAPH_NODE_TYPE_MEMCPY);
    CU_OK(cuGraphNodeGetType(nodes[4], &type));
    cr_assert_eq(type, CU_GRAPH_NODE_TYPE_MEMSET);

    CUgraphExec x, x2;
    CU_OK(cuGraphInstantiate(&x, g, 0));
    /* The CUDA 11 form, as a program built then binds it. */
    CUresult (*instantiate_v2)(CUgraphExec *, CUgraph, CUgraphNode *, char *, size_t);
    CU_OK(cuGetProcAddress_v2("cuGraphInstantiate", (void **)&instantiate_v2, 11000, 0, NULL));
    char log[16] = "x";
    CU_OK(instantiate_v2(&x2, g, NULL, log, sizeof log));
    cr_assert_str_eq(log, "");
    CU_OK(cuGraphExecDestroy(x2));
    CU_OK(cuGraphDestroy(g)); /* the executable graph is a copy */
    for (int launch = 0; launch < 2; launch++) {
        t0 = qt_now_ns();
        CU_OK(cuGraphLaunch(x, s));
        CU_OK(cuStreamSynchronize(s));
        double ms = ms_since(t0);
        cr_assert(ms >= 60 && ms < 150, "launch %d took %.1f ms", launch, ms);
    }
    CU_OK(cuMemcpyDtoH(back, d, sizeof back));
    cr_assert_str_eq(back, msg);
    cr_assert_eq(back[33], 0x7e);
    CU_OK(cuGraphExecDestroy(x));
    cr_assert_eq(cuGraphLaunch(x, s), CUDA_ERROR_INVALID_VALUE);
}

Test(sim_graph, streams_joined_by_events_are_captured_together)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    CUstream main_s, side;
    CU_OK(cuStreamCreate(&main_s, CU_STREAM_NON_BLOCKING));
    CU_OK(cuStreamCreate(&side, CU_STREAM_NON_BLOCKING));
    CUevent fork, join;
    CU_OK(cuEventCreate(&fork, CU_EVENT_DISABLE_TIMING));
    CU_OK(cuEventCreate(&join, CU_EVENT_DISABLE_TIMING));
    CU_OK(cuStreamBeginCapture(main_s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
    CU_OK(sim_spin(spin, main_s, 10000000ull));
    CU_OK(cuEventRecord(fork, main_s));
    CU_OK(cuStreamWaitEvent(side, fork, 0));
    CUstreamCaptureStatus status;
    CU_OK(cuStreamIsCapturing(side, &status));
    cr_assert_eq(status, CU_STREAM_CAPTURE_STATUS_ACTIVE, "the side stream joined");
    CU_OK(sim_spin(spin, side, 10000000ull));
    CU_OK(cuEventRecord(join, side));
    CU_OK(cuStreamWaitEvent(main_s, join, 0));
    cr_assert_eq(cuStreamEndCapture(side, &(CUgraph){0}), CUDA_ERROR_STREAM_CAPTURE_UNMATCHED);
    CUgraph g;
    CU_OK(cuStreamEndCapture(main_s, &g));
    CU_OK(cuStreamIsCapturing(side, &status));
    cr_assert_eq(status, CU_STREAM_CAPTURE_STATUS_NONE);
    size_t n = 0;
    CU_OK(cuGraphGetNodes(g, NULL, &n));
    cr_assert_eq(n, 2);
    CUgraphExec x;
    CU_OK(cuGraphInstantiateWithFlags(&x, g, 0));
    uint64_t t0 = qt_now_ns();
    CU_OK(cuGraphLaunch(x, NULL));
    CU_OK(cuCtxSynchronize());
    cr_assert_geq(ms_since(t0), 20);
}

Test(sim_graph, capture_refuses_what_cannot_be_captured)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUfunction spin = sim_spin_kernel();
    CUstream s;
    CU_OK(cuStreamCreate(&s, 0));
    cr_assert_eq(cuStreamBeginCapture(NULL, CU_STREAM_CAPTURE_MODE_GLOBAL),
                 CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "the legacy stream");
    CU_OK(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
    cr_assert_eq(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_ILLEGAL_STATE);
    CU_OK(sim_spin(spin, s, 1000));
    cr_assert_eq(cuStreamSynchronize(s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
    CUstreamCaptureStatus status;
    CU_OK(cuStreamIsCapturing(s, &status));
    cr_assert_eq(status, CU_STREAM_CAPTURE_STATUS_INVALIDATED);
    cr_assert_eq(sim_spin(spin, s, 1000), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    CUgraph g = (CUgraph)1;
    cr_assert_eq(cuStreamEndCapture(s, &g), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
    cr_assert_null(g);
    cr_assert_eq(cuStreamEndCapture(s, &g), CUDA_ERROR_ILLEGAL_STATE, "no capture any more");
    CU_OK(sim_spin(spin, s, 1000));
    CU_OK(cuStreamSynchronize(s));
}
