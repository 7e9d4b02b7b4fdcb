/* config.h - the plugin's arguments in plugstack.conf:
 *
 *   required /usr/local/lib/slurm/spank_qvgpu.so socket_dir=/run/qvgpu \
 *            tenant_dir=/run/qvgpu-tenant qgpuctl=/usr/local/bin/qgpuctl
 *
 *   socket_dir=DIR   where the arbiter's admin.sock is (qgpuctl --socket-dir); /run/qvgpu
 *   tenant_dir=DIR   QVGPU_SOCKET_DIR of the job's tasks (the arbiter's --tenant-dir);
 *                    unset: the directory `qgpuctl env` names
 *   qgpuctl=PATH     the qgpuctl program; PREFIX/bin/qgpuctl of the build
 *   state_dir=DIR    where the per-job files are kept (root only); /run/qvgpu-slurm
 *   profiles=A,B     the arbiter's own profiles, accepted by --vgpu besides Q1..Q8
 *   timeout=SECONDS  how long one qgpuctl call may take; 10
 *
 * Pure: the arguments come in, a struct or one line of error comes out. */
#ifndef QSL_CONFIG_H
#define QSL_CONFIG_H

#include "slurm/spec.h"

#include <limits.h>

#ifndef QSL_DEFAULT_QGPUCTL
#define QSL_DEFAULT_QGPUCTL "/usr/local/bin/qgpuctl"
#endif

typedef struct qsl_config {
    char socket_dir[PATH_MAX]; /* the arbiter's admin socket directory */
    char tenant_dir[PATH_MAX]; /* QVGPU_SOCKET_DIR for the tasks; "" = what qgpuctl says */
    char qgpuctl[PATH_MAX];    /* absolute path of qgpuctl */
    char state_dir[PATH_MAX];  /* per-job files */
    char profiles[512];        /* extra profile names, comma-separated; "" = none */
    int timeout_ms;            /* per qgpuctl call */
} qsl_config_t;

/* Fills out from the ac words of av (the defaults for those not given). Returns 0, or
 * -EINVAL with err naming the bad word. */
int qsl_config_parse(int ac, char **av, qsl_config_t *out, char err[QSL_ERR_LEN]);

#endif
