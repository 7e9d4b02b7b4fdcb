/* config.c - parsing the plugin's plugstack.conf arguments. Pure. */
#include "slurm/config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Copies the absolute path val into out. */
static int path(const char *key, const char *val, char out[PATH_MAX], char err[QSL_ERR_LEN])
{
    size_t len = strlen(val);
    if (val[0] != '/' || len >= PATH_MAX) {
        qsl_say(err, "spank_qvgpu: %s='%.64s' is not an absolute path", key, val);
        return -EINVAL;
    }
    memcpy(out, val, len + 1);
    return 0;
}

/* A comma-separated list of profile names, none empty or too long for the arbiter. */
static int profiles(const char *val, char out[512], char err[QSL_ERR_LEN])
{
    size_t len = strlen(val);
    bool ok = len > 0 && len < 512;
    for (const char *p = val; ok; p++) {
        size_t n = strcspn(p, ",");
        ok = n > 0 && n < QSL_PROFILE_LEN;
        p += n;
        if (*p == '\0')
            break;
    }
    if (!ok) {
        qsl_say(err, "spank_qvgpu: profiles='%.64s' is not a list of names", val);
        return -EINVAL;
    }
    memcpy(out, val, len + 1);
    return 0;
}

int qsl_config_parse(int ac, char **av, qsl_config_t *out, char err[QSL_ERR_LEN])
{
    memset(out, 0, sizeof *out);
    snprintf(out->socket_dir, sizeof out->socket_dir, "/run/qvgpu");
    snprintf(out->qgpuctl, sizeof out->qgpuctl, "%s", QSL_DEFAULT_QGPUCTL);
    snprintf(out->state_dir, sizeof out->state_dir, "/run/qvgpu-slurm");
    out->timeout_ms = 10000;
    for (int i = 0; i < ac; i++) {
        const char *eq = strchr(av[i], '=');
        size_t klen = eq ? (size_t)(eq - av[i]) : strlen(av[i]);
        const char *val = eq ? eq + 1 : "";
        int rc;
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(av[i], k, klen) == 0)
        if (!eq) {
            qsl_say(err, "spank_qvgpu: argument '%.64s' is not KEY=VALUE", av[i]);
            return -EINVAL;
        } else if (KEY("socket_dir")) {
            rc = path("socket_dir", val, out->socket_dir, err);
        } else if (KEY("tenant_dir")) {
            rc = path("tenant_dir", val, out->tenant_dir, err);
        } else if (KEY("qgpuctl")) {
            rc = path("qgpuctl", val, out->qgpuctl, err);
        } else if (KEY("state_dir")) {
            rc = path("state_dir", val, out->state_dir, err);
        } else if (KEY("profiles")) {
            rc = profiles(val, out->profiles, err);
        } else if (KEY("timeout")) {
            unsigned s = 0;
            size_t n = strspn(val, "0123456789");
            for (size_t k = 0; k < n && s <= 3600; k++)
                s = s * 10 + (unsigned)(val[k] - '0');
            rc = 0;
            if (n == 0 || val[n] || s < 1 || s > 3600) {
                snprintf(err, QSL_ERR_LEN,
                         "spank_qvgpu: timeout='%.32s' is not a number of seconds from 1 to 3600",
                         val);
                rc = -EINVAL;
            }
            out->timeout_ms = (int)s * 1000;
        } else {
            snprintf(err, QSL_ERR_LEN,
                     "spank_qvgpu: unknown argument '%.64s' (socket_dir, tenant_dir, qgpuctl, "
                     "state_dir, profiles, timeout)",
                     av[i]);
            return -EINVAL;
        }
#undef KEY
        if (rc < 0)
            return rc;
    }
    return 0;
}
