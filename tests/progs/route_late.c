/* route_late.c - tests/progs/route_probe.c built with no reference to the driver, so
 * that libcuda.so.1 is loaded only when a thread started after main() opens it, as
 * PyTorch's and JAX's runtimes load it (see route_probe.c). */
#define ROUTE_PROBE_LATE 1
#include "tests/progs/route_probe.c"
