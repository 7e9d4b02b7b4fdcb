/* cuda_exec.h - modules and functions (cuda_exec.c), for the libraries of cuda_library.c
 * and the runtime's private interface of cuda_export.c, which load modules too.
 * Threads: any; each function takes qsim_g.lock itself where it needs it. The caller
 * has entered the driver (qsim_enter). */
#ifndef QSIM_CUDA_EXEC_H
#define QSIM_CUDA_EXEC_H

#include "sim/cuda_state.h"

/* Loads a module into ctx (a live context). Images are opaque to the simulator: any
 * loads. Returns CUDA_SUCCESS with the handle in *out, or CUDA_ERROR_OUT_OF_MEMORY. */
CUresult qsim_module_new(struct qsim_ctx *ctx, CUmodule *out);
/* cuModuleGetFunction: the function name of mod (any name; qsim_spin spins). */
CUresult qsim_module_function(CUfunction *out, CUmodule mod, const char *name);
/* cuModuleUnload: the module and its functions become invalid handles. */
CUresult qsim_module_unload(CUmodule mod);
/* cuFuncGetAttribute's answer for any function on CUDA ordinal ordinal. */
CUresult qsim_func_attribute(int *pi, CUfunction_attribute attrib, int ordinal);

#endif
