/* command.h - runs qgpuctl from inside Slurm's processes, bounded in time. The plugin
 * links no ZeroMQ into slurmd/slurmstepd: it talks to the arbiter only through qgpuctl.
 * Single-threaded: call it from the thread SPANK calls the plugin on. */
#ifndef QSL_COMMAND_H
#define QSL_COMMAND_H

#include "slurm/spec.h"

#include <stddef.h>

/* Runs argv[0] (an absolute path) with argv and the environment env (NULL-terminated
 * "NAME=VALUE" strings), stdin /dev/null, in its own process group, waiting at most
 * timeout_ms. out (outlen bytes, NUL-terminated) receives the start of its stdout;
 * errline its stderr's first line. Returns its exit status (0..255, 128 + the signal
 * when killed), -ETIMEDOUT after killing the group with SIGKILL, or -errno when it
 * could not be started (errline then says why). */
int qsl_command_run(const char *const argv[], const char *const env[], int timeout_ms, char *out,
                    size_t outlen, char errline[QSL_ERR_LEN]);

#endif
