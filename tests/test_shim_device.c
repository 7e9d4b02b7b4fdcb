/* test_shim_device.c - a vGPU's workload sees exactly one device, ordinal 0, the GPU the
 * vGPU lives on, through CUDA and NVML, whatever CUDA_VISIBLE_DEVICES it sets itself;
 * without a vGPU it sees the host as it is. */
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREE_GPUS "GPU A:8GiB:20,GPU B:4GiB:10,GPU C:2GiB:10"

/* A vGPU on GPU index gpu of the private host, arbiter absent. */
static void vgpu_on(qts_env_t *e, char uuids[4][64], int gpu)
{
    cr_assert_eq(qts_gpu_uuids(uuids, 4), 3);
    char *dir = qt_tmpdir();
    qts_env_vgpu(e, dir, "vgpu-dev", "00112233445566778899aabbccddeeff", uuids[gpu]);
    free(dir);
}

static void assert_only(const char *out, const char *uuid)
{
    char line[256];
    cr_assert_eq(qts_field(out, "count ", 0), 0);
    cr_assert_eq(qts_field(out, "count ", 1), 1, "%s", out);
    cr_assert(qts_line(out, "dev 0 0 ", line, sizeof line), "%s", out);
    cr_assert_str_eq(line + strlen("dev 0 0 "), uuid);
    cr_assert_eq(qts_field(out, "dev 1 ", 0), 101 /* CUDA_ERROR_INVALID_DEVICE */);
    cr_assert_eq(qts_field(out, "dev 2 ", 0), 101);
}

Test(shim_device, one_device_whatever_the_workload_sets_before_init)
{
    qt_sim_private(THREE_GPUS);
    char uuids[4][64], *out = NULL;
    qts_env_t e;
    vgpu_on(&e, uuids, 2);
    cr_assert_eq(qts_run(&e, &out, NULL, "setenv:CUDA_VISIBLE_DEVICES=0,1", "init", "count",
                         "devices", NULL),
                 0);
    cr_assert_eq(qts_field(out, "init ", 0), 0);
    assert_only(out, uuids[2]);
    free(out);
}

Test(shim_device, one_device_when_the_workload_removes_cuda_visible_devices)
{
    qt_sim_private(THREE_GPUS);
    char uuids[4][64], *out = NULL;
    qts_env_t e;
    vgpu_on(&e, uuids, 2);
    /* The driver then enumerates every GPU; the shim shows the vGPU's alone. */
    cr_assert_eq(
        qts_run(&e, &out, NULL, "unsetenv:CUDA_VISIBLE_DEVICES", "init", "count", "devices", NULL),
        0);
    cr_assert_eq(qts_field(out, "init ", 0), 0, "%s", out);
    assert_only(out, uuids[2]);
    free(out);
}

Test(shim_device, other_threads_may_read_the_environment_while_the_driver_initialises)
{
    qt_sim_private(THREE_GPUS);
    char uuids[4][64], *out = NULL;
    qts_env_t e;
    vgpu_on(&e, uuids, 1);
    /* Threads calling getenv in a loop while one thread's cuInit puts the vGPU's GPU back
     * in CUDA_VISIBLE_DEVICES; each sees a whole value. */
    cr_assert_eq(qts_run(&e, &out, NULL, "setenv:CUDA_VISIBLE_DEVICES=0", "getenv_race:8", "count",
                         "devices", NULL),
                 0);
    cr_assert_eq(qts_field(out, "getenv_race ", 0), 0, "%s", out);
    cr_assert_eq(qts_field(out, "getenv_race ", 1), 0, "torn or unknown values: %s", out);
    assert_only(out, uuids[1]);
    free(out);
}

Test(shim_device, one_device_whatever_the_environment_says_at_start)
{
    qt_sim_private(THREE_GPUS);
    char uuids[4][64], *out = NULL;
    qts_env_t e;
    vgpu_on(&e, uuids, 1);
    /* A CUDA_VISIBLE_DEVICES naming another GPU: the vGPU's UUID still wins, since the
     * shim reads the one `qgpuctl run` set before the program could change it. */
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "count", "devices", NULL), 0);
    assert_only(out, uuids[1]);
    free(out);
}

Test(shim_device, nvml_shows_the_same_single_device)
{
    qt_sim_private(THREE_GPUS);
    char uuids[4][64], *out = NULL, line[512], expect[256];
    qts_env_t e;
    vgpu_on(&e, uuids, 1);
    char other[128];
    snprintf(other, sizeof other, "nvml_other:%s", uuids[0]);
    cr_assert_eq(qts_run(&e, &out, NULL, "nvml", other, NULL), 0);
    cr_assert(qts_line(out, "nvml ", line, sizeof line), "%s", out);
    snprintf(expect, sizeof expect, "nvml 0 1 ");
    cr_assert_eq(strncmp(line, expect, strlen(expect)), 0, "%s", line);
    cr_assert(strstr(line, uuids[1]), "%s", line);
    cr_assert(strstr(line, " idx 0 "), "%s", line);
    cr_assert(strstr(line, " second 2"), "index 1 must be invalid: %s", line);
    cr_assert_eq(qts_field(out, "nvml_other ", 0), 6 /* NVML_ERROR_NOT_FOUND */,
                 "another GPU must not be reachable by UUID");
    free(out);
}

Test(shim_device, pass_through_shows_the_whole_host)
{
    qt_sim_private(THREE_GPUS);
    char *out = NULL, line[512];
    qts_env_t e;
    qts_env_passthrough(&e);
    cr_assert_eq(qts_run(&e, &out, NULL, "init", "count", "devices", "nvml", NULL), 0);
    cr_assert_eq(qts_field(out, "count ", 1), 3);
    cr_assert_eq(qts_field(out, "dev 2 ", 0), 0);
    cr_assert(qts_line(out, "nvml ", line, sizeof line));
    cr_assert_eq(strncmp(line, "nvml 0 3 ", 9), 0, "%s", line);
    cr_assert(strstr(line, " second 0"), "%s", line);
    free(out);
}

Test(shim_device, no_device_when_the_vgpus_gpu_is_unknown_or_absent)
{
    qt_sim_private(THREE_GPUS);
    char *out = NULL, *err = NULL;
    qts_env_t e;
    char *dir = qt_tmpdir();
    qts_env_vgpu(&e, dir, "vgpu-x", "00", "GPU-00000000-0000-0000-0000-000000000000");
    cr_assert_eq(qts_run(&e, &out, &err, "init", "count", "devices", NULL), 0);
    /* As the driver answers when CUDA_VISIBLE_DEVICES names no GPU it has. */
    cr_assert_eq(qts_field(out, "init ", 0), 100 /* CUDA_ERROR_NO_DEVICE */, "%s", out);
    cr_assert_neq(qts_field(out, "dev 0 ", 0), 0);
    cr_assert(strstr(err, "is not visible to this process"), "%s", err);
    cr_assert_eq(qts_count_lines(err, "qvgpu: GPU "), 1, "one line, once:\n%s", err);
    free(out);
    free(err);
    qts_env_vgpu(&e, dir, "vgpu-x", "00", NULL);
    cr_assert_eq(qts_run(&e, &out, &err, "init", "count", NULL), 0);
    cr_assert_eq(qts_field(out, "count ", 1), 0);
    cr_assert(strstr(err, "no GPU is known for vGPU vgpu-x"), "%s", err);
    free(out);
    free(err);
    free(dir);
}
