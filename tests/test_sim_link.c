/* test_sim_link.c - the JIT linker of the simulated driver (cuLinkCreate, cuLinkAddData,
 * cuLinkAddFile, cuLinkComplete, cuLinkDestroy) as Numba's @cuda.jit and CuPy use it:
 * PTX in, a cubin out that loads and runs like any module; inputs checked by kind, with
 * the documented errors and a line in the error log; output options written back. */
#include <criterion/criterion.h>
#include <cuda.h>
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tests/sim_support.h"

/* cuda.h maps the v1 names to their _v2; the v1 entry points are still exported with the
 * same parameters. */
#undef cuLinkCreate
#undef cuLinkAddData
#undef cuLinkAddFile
CUresult CUDAAPI cuLinkCreate(unsigned int numOptions, CUjit_option *options, void **optionValues,
                              CUlinkState *stateOut);
CUresult CUDAAPI cuLinkAddData(CUlinkState state, CUjitInputType type, void *data, size_t size,
                               const char *name, unsigned int numOptions, CUjit_option *options,
                               void **optionValues);
CUresult CUDAAPI cuLinkAddFile(CUlinkState state, CUjitInputType type, const char *path,
                               unsigned int numOptions, CUjit_option *options,
                               void **optionValues);

/* The kernel tests/progs/sim_selfcheck.c runs on real GPUs: it spins for its parameter's
 * nanoseconds, which the simulator's qsim_spin models. */
static const char spin_ptx[] = "// a comment before the version, as nvcc writes one\n"
                               ".version 7.0\n"
                               ".target sm_52\n"
                               ".address_size 64\n"
                               ".visible .entry qsim_spin(.param .u64 qsim_spin_param_0)\n"
                               "{\n"
                               "    .reg .pred %p<2>;\n"
                               "    .reg .b64 %rd<5>;\n"
                               "    ld.param.u64 %rd1, [qsim_spin_param_0];\n"
                               "    mov.u64 %rd2, %globaltimer;\n"
                               "$L_spin:\n"
                               "    mov.u64 %rd3, %globaltimer;\n"
                               "    sub.s64 %rd4, %rd3, %rd2;\n"
                               "    setp.lt.u64 %p1, %rd4, %rd1;\n"
                               "    @%p1 bra $L_spin;\n"
                               "    ret;\n"
                               "}\n";

/* A link with both logs, verbose, and the wall time: the options Numba passes. */
struct logged_link {
    CUlinkState state;
    char info[1024], error[1024];
    CUjit_option opts[6];
    void *vals[6];
};

static void logged_create(struct logged_link *l)
{
    memset(l, 0, sizeof *l);
    CUjit_option o[] = {CU_JIT_INFO_LOG_BUFFER,  CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                        CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                        CU_JIT_LOG_VERBOSE,      CU_JIT_WALL_TIME};
    void *v[] = {l->info, (void *)(uintptr_t)sizeof l->info, l->error,
                 (void *)(uintptr_t)sizeof l->error, (void *)1, NULL};
    memcpy(l->opts, o, sizeof o);
    memcpy(l->vals, v, sizeof v);
    CU_OK(cuLinkCreate_v2(6, l->opts, l->vals, &l->state));
}

static unsigned slot_uint(const struct logged_link *l, int i)
{
    return (unsigned)(uintptr_t)l->vals[i];
}

Test(sim_link, a_module_linked_from_ptx_runs_its_kernel)
{
    qt_sim_private(NULL);
    sim_up(0);
    struct logged_link l;
    logged_create(&l);
    CU_OK(cuLinkAddData_v2(l.state, CU_JIT_INPUT_PTX, (void *)spin_ptx, strlen(spin_ptx),
                           "spin.ptx", 0, NULL, NULL));
    void *cubin = NULL;
    size_t size = 0;
    CU_OK(cuLinkComplete(l.state, &cubin, &size));
    cr_assert_not_null(cubin);
    cr_assert_gt(size, sizeof(Elf64_Ehdr) + strlen(spin_ptx));
    const Elf64_Ehdr *eh = cubin;
    cr_assert(memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0, "the cubin is an ELF file");
    cr_assert_eq(eh->e_machine, 190 /* EM_CUDA */);
    cr_assert_eq(eh->e_flags & 0xff, 61, "linked for the GTX 1080's sm_61");
    /* The logs: nothing went wrong, the verbose info log says what was linked, and both
     * sizes came back in their slots. */
    cr_assert_str_eq(l.error, "");
    cr_assert_eq(slot_uint(&l, 3), 0);
    cr_assert(strstr(l.info, "spin.ptx"), "%s", l.info);
    cr_assert_eq(slot_uint(&l, 1), strlen(l.info) + 1);
    float ms;
    memcpy(&ms, &l.vals[5], sizeof ms);
    cr_assert(ms >= 0.0f && ms < 10000.0f, "wall time %f ms", ms);

    /* Loaded before the state goes (the cubin is the state's): it runs like any module. */
    CUmodule mod;
    CUfunction f;
    CU_OK(cuModuleLoadData(&mod, cubin));
    CU_OK(cuLinkDestroy(l.state));
    CU_OK(cuModuleGetFunction(&f, mod, "qsim_spin"));
    float elapsed = sim_spin_ms(f, NULL, 20000000ull);
    cr_assert(elapsed >= 19.99f && elapsed < 2000.0f, "the kernel ran %f ms, not 20", elapsed);
    CU_OK(cuModuleUnload(mod));
}

Test(sim_link, inputs_of_the_wrong_kind_are_refused_with_a_line_in_the_error_log)
{
    qt_sim_private(NULL);
    sim_up(0);
    struct logged_link l;
    logged_create(&l);
    char text[] = "not a binary of any kind, just text";
    cr_assert_eq(cuLinkAddData_v2(l.state, CU_JIT_INPUT_CUBIN, text, sizeof text, "a.cubin", 0,
                                  NULL, NULL),
                 CUDA_ERROR_INVALID_IMAGE);
    cr_assert(strstr(l.error, "'a.cubin' is not a cubin"), "%s", l.error);
    cr_assert_eq(slot_uint(&l, 3), strlen(l.error) + 1, "the error log's size came back");
    cr_assert_eq(cuLinkAddData_v2(l.state, CU_JIT_INPUT_FATBINARY, text, sizeof text, "a.fatbin",
                                  0, NULL, NULL),
                 CUDA_ERROR_INVALID_IMAGE);
    cr_assert_eq(cuLinkAddData_v2(l.state, CU_JIT_INPUT_LIBRARY, text, sizeof text, "liba.a", 0,
                                  NULL, NULL),
                 CUDA_ERROR_INVALID_IMAGE);
    cr_assert_eq(cuLinkAddData_v2(l.state, CU_JIT_INPUT_OBJECT, text, sizeof text, "a.o", 0,
                                  NULL, NULL),
                 CUDA_ERROR_INVALID_IMAGE);
    cr_assert_eq(cuLinkAddData_v2(l.state, CU_JIT_INPUT_PTX, text, sizeof text, "a.ptx", 0, NULL,
                                  NULL),
                 CUDA_ERROR_INVALID_PTX);
    cr_assert(strstr(l.error, "Missing .version"), "%s", l.error);
    /* A toolkit newer than the driver: the error users of a too-old driver see. */
    char newer[] = ".version 9.9\n.target sm_52\n";
    cr_assert_eq(cuLinkAddData_v2(l.state, CU_JIT_INPUT_PTX, newer, sizeof newer, "new.ptx", 0,
                                  NULL, NULL),
                 CUDA_ERROR_UNSUPPORTED_PTX_VERSION);
    cr_assert(strstr(l.error, "Unsupported .version 9.9; current version is '9.0'"), "%s",
              l.error);
    /* Code for a newer GPU than the context's. */
    char hopper[] = ".version 8.0\n.target sm_90\n";
    cr_assert_eq(cuLinkAddData_v2(l.state, CU_JIT_INPUT_PTX, hopper, sizeof hopper, "h.ptx", 0,
                                  NULL, NULL),
                 CUDA_ERROR_INVALID_PTX);
    cr_assert(strstr(l.error, "SM version specified by .target is higher"), "%s", l.error);
    /* NVVM (LTO-IR) only with CU_JIT_LTO; type and data checked. */
    cr_assert_eq(cuLinkAddData_v2(l.state, CU_JIT_INPUT_NVVM, text, sizeof text, "a.ltoir", 0,
                                  NULL, NULL),
                 CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuLinkAddData_v2(l.state, (CUjitInputType)6, text, sizeof text, "x", 0, NULL,
                                  NULL),
                 CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuLinkAddData_v2(l.state, CU_JIT_INPUT_CUBIN, NULL, 64, "x", 0, NULL, NULL),
                 CUDA_ERROR_INVALID_VALUE);
    /* Nothing was added, so there is nothing to link. */
    void *cubin = NULL;
    cr_assert_eq(cuLinkComplete(l.state, &cubin, NULL), CUDA_ERROR_INVALID_VALUE);
    cr_assert_null(cubin);
    CU_OK(cuLinkDestroy(l.state));
}

Test(sim_link, a_linked_cubin_and_real_containers_are_accepted_as_inputs)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUlinkState first, second;
    CU_OK(cuLinkCreate_v2(0, NULL, NULL, &first));
    CU_OK(cuLinkAddData_v2(first, CU_JIT_INPUT_PTX, (void *)spin_ptx, 0, NULL, 0, NULL, NULL));
    void *cubin;
    size_t size;
    CU_OK(cuLinkComplete(first, &cubin, &size));
    CU_OK(cuLinkCreate_v2(0, NULL, NULL, &second));
    CU_OK(cuLinkAddData_v2(second, CU_JIT_INPUT_CUBIN, cubin, size, "first.cubin", 0, NULL, NULL));
    uint8_t fatbin[64] = {0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0}; /* 0xba55ed50, version 1 */
    CU_OK(cuLinkAddData_v2(second, CU_JIT_INPUT_FATBINARY, fatbin, sizeof fatbin, "k.fatbin", 0,
                           NULL, NULL));
    char archive[] = "!<arch>\n";
    CU_OK(cuLinkAddData_v2(second, CU_JIT_INPUT_LIBRARY, archive, sizeof archive - 1, "libk.a", 0,
                           NULL, NULL));
    void *out;
    CU_OK(cuLinkComplete(second, &out, NULL));
    CUmodule mod;
    CU_OK(cuModuleLoadData(&mod, out));
    CU_OK(cuModuleUnload(mod));
    CU_OK(cuLinkDestroy(second));
    CU_OK(cuLinkDestroy(first));
}

Test(sim_link, files_are_read_and_a_missing_one_says_so)
{
    qt_sim_private(NULL);
    sim_up(0);
    char *dir = qt_tmpdir();
    char path[4096], missing[4096];
    snprintf(path, sizeof path, "%s/spin.ptx", dir);
    snprintf(missing, sizeof missing, "%s/nothing.ptx", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(spin_ptx, f); /* no NUL at the end, as a file has none */
    fclose(f);
    struct logged_link l;
    logged_create(&l);
    cr_assert_eq(cuLinkAddFile_v2(l.state, CU_JIT_INPUT_PTX, missing, 0, NULL, NULL),
                 CUDA_ERROR_FILE_NOT_FOUND);
    cr_assert(strstr(l.error, missing), "%s", l.error);
    cr_assert_eq(cuLinkAddFile_v2(l.state, CU_JIT_INPUT_PTX, dir, 0, NULL, NULL),
                 CUDA_ERROR_FILE_NOT_FOUND, "a directory is no input");
    CU_OK(cuLinkAddFile_v2(l.state, CU_JIT_INPUT_PTX, path, 0, NULL, NULL));
    cr_assert(strstr(l.info, path), "%s", l.info);
    void *cubin;
    CU_OK(cuLinkComplete(l.state, &cubin, NULL));
    CU_OK(cuLinkDestroy(l.state));
    free(dir);
}

Test(sim_link, options_are_checked_as_documented)
{
    qt_sim_private(NULL);
    sim_up(0);
    CUlinkState s;
    CUjit_option bad[] = {CU_JIT_NUM_OPTIONS};
    void *v[2] = {0};
    cr_assert_eq(cuLinkCreate_v2(1, bad, v, &s), CUDA_ERROR_INVALID_VALUE);
    CUjit_option fallback[] = {CU_JIT_FALLBACK_STRATEGY};
    cr_assert_eq(cuLinkCreate_v2(1, fallback, v, &s), CUDA_ERROR_INVALID_VALUE,
                 "the fallback strategy cannot be used with cuLink*");
    CUjit_option both[] = {CU_JIT_TARGET, CU_JIT_THREADS_PER_BLOCK};
    void *both_v[] = {(void *)(uintptr_t)CU_TARGET_COMPUTE_61, (void *)128};
    cr_assert_eq(cuLinkCreate_v2(2, both, both_v, &s), CUDA_ERROR_INVALID_VALUE);
    CUjit_option target[] = {CU_JIT_TARGET};
    void *bogus[] = {(void *)(uintptr_t)63};
    cr_assert_eq(cuLinkCreate_v2(1, target, bogus, &s), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuLinkCreate_v2(1, target, NULL, &s), CUDA_ERROR_INVALID_VALUE);
    cr_assert_eq(cuLinkCreate_v2(0, NULL, NULL, NULL), CUDA_ERROR_INVALID_VALUE);

    /* An explicit target links code the context's GPU could not run. */
    void *hopper_v[] = {(void *)(uintptr_t)CU_TARGET_COMPUTE_90};
    CU_OK(cuLinkCreate_v2(1, target, hopper_v, &s));
    char hopper[] = ".version 8.0\n.target sm_90\n";
    CU_OK(cuLinkAddData_v2(s, CU_JIT_INPUT_PTX, hopper, sizeof hopper, "h.ptx", 0, NULL, NULL));
    /* Options of one input are compiler options: the logs and the target are not. */
    CUjit_option wall[] = {CU_JIT_WALL_TIME};
    cr_assert_eq(cuLinkAddData_v2(s, CU_JIT_INPUT_PTX, hopper, sizeof hopper, "h.ptx", 1, wall, v),
                 CUDA_ERROR_INVALID_VALUE);
    CUjit_option regs[] = {CU_JIT_MAX_REGISTERS};
    void *regs_v[] = {(void *)32};
    CU_OK(cuLinkAddData_v2(s, CU_JIT_INPUT_PTX, hopper, sizeof hopper, "h.ptx", 1, regs, regs_v));
    void *cubin;
    CU_OK(cuLinkComplete(s, &cubin, NULL));
    cr_assert_eq(((const Elf64_Ehdr *)cubin)->e_flags & 0xff, 90);
    CU_OK(cuLinkDestroy(s));
}

Test(sim_link, handles_contexts_and_the_v1_entry_points)
{
    qt_sim_private(NULL);
    CU_OK(cuInit(0));
    CUlinkState s;
    cr_assert_eq(cuLinkCreate_v2(0, NULL, NULL, &s), CUDA_ERROR_INVALID_CONTEXT);
    sim_up(0);
    /* The v1 names are the same functions with the same parameters. */
    CU_OK(cuLinkCreate(0, NULL, NULL, &s));
    CU_OK(cuLinkAddData(s, CU_JIT_INPUT_PTX, (void *)spin_ptx, 0, "spin", 0, NULL, NULL));
    cr_assert_eq(cuLinkAddFile(s, CU_JIT_INPUT_PTX, "/nonexistent/k.ptx", 0, NULL, NULL),
                 CUDA_ERROR_FILE_NOT_FOUND);
    void *cubin;
    cr_assert_eq(cuLinkComplete(s, NULL, NULL), CUDA_ERROR_INVALID_VALUE);
    CU_OK(cuLinkComplete(s, &cubin, NULL));
    void *again;
    CU_OK(cuLinkComplete(s, &again, NULL));
    cr_assert(memcmp(cubin, again, sizeof(Elf64_Ehdr)) == 0, "completing twice: the same cubin");
    CU_OK(cuLinkDestroy(s));
    /* A destroyed state is an invalid handle everywhere. */
    cr_assert_eq(cuLinkAddData_v2(s, CU_JIT_INPUT_PTX, (void *)spin_ptx, 0, "x", 0, NULL, NULL),
                 CUDA_ERROR_INVALID_HANDLE);
    cr_assert_eq(cuLinkAddFile_v2(s, CU_JIT_INPUT_PTX, "/x", 0, NULL, NULL),
                 CUDA_ERROR_INVALID_HANDLE);
    cr_assert_eq(cuLinkComplete(s, &cubin, NULL), CUDA_ERROR_INVALID_HANDLE);
    cr_assert_eq(cuLinkDestroy(s), CUDA_ERROR_INVALID_HANDLE);
    cr_assert_eq(cuLinkDestroy(NULL), CUDA_ERROR_INVALID_HANDLE);
}
