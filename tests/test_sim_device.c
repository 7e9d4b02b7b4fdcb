/* test_sim_device.c - the simulated driver's start-up and device queries: cuInit,
 * versions, QSIM_GPUS (good and bad), CUDA_VISIBLE_DEVICES, names, UUIDs, attributes. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/harness.h"
#include "tests/sim_support.h"

Test(sim_device, calls_before_cuInit_fail_and_versions_work_without_it)
{
    qt_sim_private(NULL);
    int v = 0, n = 0;
    CU_OK(cuDriverGetVersion(&v));
    cr_assert_eq(v, 13000);
    cr_assert_eq(cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
    cr_assert_eq(cuInit(1), CUDA_ERROR_INVALID_VALUE, "cuInit takes no flags");
    CU_OK(cuInit(0));
    CU_OK(cuInit(0));
    CU_OK(cuDeviceGetCount(&n));
    cr_assert_eq(n, 1);
}

Test(sim_device, the_default_gpu_is_a_gtx_1080)
{
    qt_sim_private(NULL);
    CUdevice d;
    CU_OK(cuInit(0));
    CU_OK(cuDeviceGet(&d, 0));
    char name[64];
    size_t mem;
    int sms, major, minor, warp;
    CU_OK(cuDeviceGetName(name, sizeof name, d));
    CU_OK(cuDeviceTotalMem(&mem, d));
    CU_OK(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, d));
    CU_OK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, d));
    CU_OK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, d));
    CU_OK(cuDeviceGetAttribute(&warp, CU_DEVICE_ATTRIBUTE_WARP_SIZE, d));
    cr_assert_str_eq(name, "NVIDIA GeForce GTX 1080");
    cr_assert_eq(mem, 8 * GiB);
    cr_assert_eq(sms, 20);
    cr_assert_eq(major * 10 + minor, 61);
    cr_assert_eq(warp, 32);
}

Test(sim_device, devices_follow_qsim_gpus_in_order_with_plausible_capabilities)
{
    qt_sim_private("NVIDIA H100 80GB HBM3:80GiB:132, Mystery GPU:4096MiB:8");
    int n;
    CU_OK(cuInit(0));
    CU_OK(cuDeviceGetCount(&n));
    cr_assert_eq(n, 2);
    char name[64];
    size_t mem;
    int major, minor, sms, threads;
    CU_OK(cuDeviceGetName(name, sizeof name, 0));
    CU_OK(cuDeviceTotalMem(&mem, 0));
    CU_OK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 0));
    CU_OK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 0));
    cr_assert_str_eq(name, "NVIDIA H100 80GB HBM3");
    cr_assert_eq(mem, 80 * GiB);
    cr_assert_eq(major * 10 + minor, 90);
    CU_OK(cuDeviceGetName(name, sizeof name, 1));
    CU_OK(cuDeviceTotalMem(&mem, 1));
    CU_OK(cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 1));
    CU_OK(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 1));
    CU_OK(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 1));
    CU_OK(cuDeviceGetAttribute(&threads, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 1));
    cr_assert_str_eq(name, "Mystery GPU");
    cr_assert_eq(mem, 4 * GiB);
    cr_assert_eq(sms, 8);
    cr_assert_eq(major * 10 + minor, 86, "an unknown name is an 8.6");
    cr_assert_eq(threads, 1024);
}

Test(sim_device, bad_device_numbers_and_attributes_are_refused)
{
    qt_sim_private(NULL);
    CUdevice d;
    int v;
    char name[8];
    CU_OK(cuInit(0));
    cr_assert_eq(cuDeviceGet(&d, 1), CUDA_ERROR_INVALID_DEVICE);
    cr_assert_eq(cuDeviceGet(&d, -1), CUDA_ERROR_INVALID_DEVICE);
    cr_assert_eq(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_WARP_SIZE, 3),
                 CUDA_ERROR_INVALID_DEVICE);
    cr_assert_eq(cuDeviceGetAttribute(&v, (CUdevice_attribute)100000, 0), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuDeviceGetName(name, 0, 0), CUDA_ERROR_INVALID_VALUE);
    CU_OK(cuDeviceGetName(name, sizeof name, 0));
    cr_assert_str_eq(name, "NVIDIA ", "names are truncated to the buffer");
}

/* Runs `sim_worker info` with env and returns its stdout (caller frees). */
static char *info(const char *const env[], int *status, char **err)
{
    char *bin = qt_build_path("tests/progs/sim_worker");
    const char *argv[] = {bin, "info", NULL};
    char *out = NULL;
    *status = qt_run(argv, env, 10000, &out, err);
    free(bin);
    return out;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(sim_device, uuids_are_the_same_in_every_process_and_differ_between_devices)
{
    qt_sim_private("A:1GiB:2,B:1GiB:2");
    int status;
    char *first = info(NULL, &status, NULL);
    cr_assert_eq(status, 0, "%s", first);
    char *second = info(NULL, &status, NULL);
    cr_assert_str_eq(first, second);
    CUuuid u0, u1;
    CU_OK(cuInit(0));
    CU_OK(cuDeviceGetUuid(&u0, 0));
    CU_OK(cuDeviceGetUuid_v2(&u1, 1));
    cr_assert_neq(memcmp(u0.bytes, u1.bytes, 16), 0);
    char hex[16];
    snprintf(hex, sizeof hex, "GPU-%02x%02x%02x%02x", (unsigned char)u0.bytes[0],
             (unsigned char)u0.bytes[1], (unsigned char)u0.bytes[2], (unsigned char)u0.bytes[3]);
    cr_assert(strstr(first, hex), "in-process UUID %s not in %s", hex, first);
    free(first);
    free(second);
}

Test(sim_device, cuda_visible_devices_selects_and_orders_devices)
{
    qt_sim_private("A:1GiB:2,B:2GiB:2,C:3GiB:2");
    int status;
    const char *env1[] = {"CUDA_VISIBLE_DEVICES=2,0", NULL};
    char *out = info(env1, &status, NULL);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_eq(count_lines(out), 2);
    cr_assert(strstr(out, "dev 0 name=C") && strstr(out, "dev 1 name=A"), "%s", out);
    free(out);

    const char *env2[] = {"CUDA_VISIBLE_DEVICES=1,7,0", NULL};
    out = info(env2, &status, NULL);
    cr_assert_eq(count_lines(out), 1, "an invalid entry ends the list: %s", out);
    cr_assert(strstr(out, "dev 0 name=B"), "%s", out);
    free(out);

    /* By UUID prefix and by whole UUID. */
    CUuuid u;
    CU_OK(cuInit(0));
    CU_OK(cuDeviceGetUuid(&u, 2));
    const unsigned char *b = (const unsigned char *)u.bytes;
    char env3[64], env4[96];
    snprintf(env3, sizeof env3, "CUDA_VISIBLE_DEVICES=GPU-%02x%02x%02x%02x,0", b[0], b[1], b[2],
             b[3]);
    snprintf(env4, sizeof env4,
             "CUDA_VISIBLE_DEVICES=GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    const char *e3[] = {env3, NULL}, *e4[] = {env4, NULL};
    out = info(e3, &status, NULL);
    cr_assert(strstr(out, "dev 0 name=C") && strstr(out, "dev 1 name=A"), "%s: %s", env3, out);
    free(out);
    out = info(e4, &status, NULL);
    cr_assert(strstr(out, "dev 0 name=C") && count_lines(out) == 1, "%s: %s", env4, out);
    free(out);

    const char *env5[] = {"CUDA_VISIBLE_DEVICES=", NULL};
    out = info(env5, &status, NULL);
    cr_assert_eq(status, 1);
    cr_assert(strstr(out, "CUDA_ERROR_NO_DEVICE"), "%s", out);
    free(out);
}

Test(sim_device, a_bad_qsim_gpus_fails_cuInit_with_one_line_naming_the_entry)
{
    qt_sim_private(NULL);
    static const char *bad[] = {
        "QSIM_GPUS=NVIDIA GeForce GTX 1080:8XB:20",
        "QSIM_GPUS=Good:1GiB:4,Broken",
        "QSIM_GPUS=Zero:0GiB:4",
        "QSIM_GPUS=NoSMs:1GiB:0",
        "QSIM_GPUS=",
        "QSIM_TIMESLICE_US=abc",
        "QSIM_DRIVER_VERSION=12345",
    };
    static const char *named[] = {"8XB",          "Broken",    "Zero:0GiB:4",
                                  "NoSMs:1GiB:0", "QSIM_GPUS", "QSIM_TIMESLICE_US",
                                  "QSIM_DRIVER_VERSION \"12345\": want one of"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *env[] = {bad[i], NULL};
        int status;
        char *err = NULL;
        char *out = info(env, &status, &err);
        cr_assert_eq(status, 1, "%s: exit %d", bad[i], status);
        cr_assert(strstr(out, "CUDA_ERROR_INVALID_VALUE in cuInit"), "%s: %s", bad[i], out);
        cr_assert_eq(count_lines(err), 1, "%s: want one line, got: %s", bad[i], err);
        cr_assert(strstr(err, named[i]), "%s: the line does not name it: %s", bad[i], err);
        free(out);
        free(err);
    }
}

Test(sim_device, a_bad_qsim_gpus_fails_every_later_call_without_crashing)
{
    qt_sim_private("broken");
    int n;
    cr_assert_eq(cuInit(0), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuInit(0), CUDA_ERROR_INVALID_VALUE, "the failure sticks");
    cr_assert_eq(cuDeviceGetCount(&n), CUDA_ERROR_NOT_INITIALIZED);
}

Test(sim_device, pci_bus_ids_round_trip)
{
    qt_sim_private("A:1GiB:2,B:1GiB:2");
    CU_OK(cuInit(0));
    char bus[32];
    CUdevice d;
    CU_OK(cuDeviceGetPCIBusId(bus, sizeof bus, 1));
    CU_OK(cuDeviceGetByPCIBusId(&d, bus));
    cr_assert_eq(d, 1);
    cr_assert_eq(cuDeviceGetByPCIBusId(&d, "0000:7f:00.0"), CUDA_ERROR_INVALID_DEVICE);
}

Test(sim_device, error_names_and_strings)
{
    const char *s;
    CU_OK(cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s));
    cr_assert_str_eq(s, "CUDA_ERROR_OUT_OF_MEMORY");
    CU_OK(cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s));
    cr_assert_str_eq(s, "out of memory");
    cr_assert_eq(cuGetErrorName((CUresult)12345, &s), CUDA_ERROR_INVALID_VALUE);
}

Test(sim_device, a_child_forked_after_cuInit_cannot_use_the_driver)
{
    qt_sim_private(NULL);
    sim_up(0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int n;
        CUdeviceptr p;
        bool refused = cuDeviceGetCount(&n) == CUDA_ERROR_NOT_INITIALIZED &&
                       cuMemAlloc(&p, 16) == CUDA_ERROR_NOT_INITIALIZED &&
                       cuInit(0) == CUDA_ERROR_NOT_INITIALIZED;
        _exit(refused ? 0 : 1);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child was not refused");
    int n;
    CU_OK(cuDeviceGetCount(&n)); /* the parent carries on */
}
