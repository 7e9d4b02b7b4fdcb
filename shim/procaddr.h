/* procaddr.h - which exported variant the driver's cuGetProcAddress resolves a request to.
 * Pure: reads the generated table build/gen/cuda_procaddr.h, which the driver follows. */
#ifndef QS_PROCADDR_H
#define QS_PROCADDR_H

#include <stdbool.h>

/* The exported symbol that cuGetProcAddress(name, .., cuda_version, flags) returns, where
 * per_thread is flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM: the variant of name
 * with the highest version <= cuda_version among the per-thread ones when per_thread is
 * asked and name has one that old, else among the plain ones. NULL when name is not in
 * the table or has no variant that old. Borrowed, static. */
const char *qs_procaddr_variant(const char *name, int cuda_version, bool per_thread);

#endif
