/* oci.c - an OCI config and the CDI edits applied to it (see oci.h). */
#include "container/oci.h"

#include "proto/container.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MAX_JSON (16u << 20)

const char *qc_oci_env(const json_t *config, const char *name)
{
    json_t *env = json_object_get(json_object_get(config, "process"), "env");
    size_t n = strlen(name), i;
    json_t *e;
    json_array_foreach(env, i, e)
    {
        const char *s = json_string_value(e);
        if (s && strncmp(s, name, n) == 0 && s[n] == '=')
            return s + n + 1;
    }
    return NULL;
}

const char *qc_oci_vgpu(const json_t *config)
{
    const char *v = qc_oci_env(config, "QVGPU_VGPU");
    if (!v || !*v)
        v = json_string_value(
            json_object_get(json_object_get(config, "annotations"), QP_ANNOTATION_VGPU));
    return v && *v ? v : NULL;
}

int qc_oci_root(const json_t *config, const char *bundle, char *out, size_t cap)
{
    const char *p = json_string_value(json_object_get(json_object_get(config, "root"), "path"));
    if (!p || !*p)
        return -EINVAL;
    if (p[0] == '/')
        snprintf(out, cap, "%s", p);
    else
        snprintf(out, cap, "%s/%s", bundle, p);
    return 0;
}

/* Removes from list the objects whose string member key is value. */
static void remove_where(json_t *list, const char *key, const char *value)
{
    for (size_t k = json_array_size(list); k-- > 0;) {
        const char *v = json_string_value(json_object_get(json_array_get(list, k), key));
        if (v && strcmp(v, value) == 0)
            json_array_remove(list, k);
    }
}

/* The object under key of o, made empty when absent; NULL when key holds something else. */
static json_t *object_at(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        v = json_object();
        json_object_set_new(o, key, v);
    }
    return json_is_object(v) ? v : NULL;
}

/* The array under key of o, made empty when absent; NULL when key holds something else. */
static json_t *array_at(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        v = json_array();
        json_object_set_new(o, key, v);
    }
    return json_is_array(v) ? v : NULL;
}

static int apply_env(json_t *config, const json_t *env, char *err)
{
    json_t *process = object_at(config, "process"),
           *list = process ? array_at(process, "env") : NULL;
    if (!list) {
        snprintf(err, QC_ERR_LEN, "the config's process.env is not a list");
        return -EINVAL;
    }
    size_t i;
    json_t *e;
    json_array_foreach(env, i, e)
    {
        const char *s = json_string_value(e), *eq = s ? strchr(s, '=') : NULL;
        if (!eq || eq == s) {
            snprintf(err, QC_ERR_LEN, "the spec's env entry %zu is not NAME=VALUE", i);
            return -EINVAL;
        }
        size_t n = (size_t)(eq - s) + 1;
        for (size_t k = json_array_size(list); k-- > 0;) {
            const char *old = json_string_value(json_array_get(list, k));
            if (old && strncmp(old, s, n) == 0)
                json_array_remove(list, k);
        }
        json_array_append(list, e);
    }
    return 0;
}

static int apply_mounts(json_t *config, const json_t *mounts, char *err)
{
    json_t *list = array_at(config, "mounts");
    if (!list) {
        snprintf(err, QC_ERR_LEN, "the config's mounts is not a list");
        return -EINVAL;
    }
    size_t i;
    json_t *m;
    json_array_foreach(mounts, i, m)
    {
        const char *host = json_string_value(json_object_get(m, "hostPath"));
        const char *dest = json_string_value(json_object_get(m, "containerPath"));
        const char *type = json_string_value(json_object_get(m, "type"));
        json_t *options = json_object_get(m, "options");
        if (!host || !dest || (options && !json_is_array(options))) {
            snprintf(err, QC_ERR_LEN, "the spec's mount %zu lacks hostPath or containerPath", i);
            return -EINVAL;
        }
        remove_where(list, "destination", dest);
        json_t *om = json_pack("{s:s, s:s, s:s}", "destination", dest, "type", type ? type : "bind",
                               "source", host);
        if (options)
            json_object_set(om, "options", options);
        json_array_append_new(list, om);
    }
    return 0;
}

static int apply_hooks(json_t *config, const json_t *hooks, char *err)
{
    static const char *const names[] = {"prestart",       "createRuntime", "createContainer",
                                        "startContainer", "poststart",     "poststop"};
    json_t *all = object_at(config, "hooks");
    size_t i;
    json_t *h;
    json_array_foreach(hooks, i, h)
    {
        const char *name = json_string_value(json_object_get(h, "hookName"));
        const char *path = json_string_value(json_object_get(h, "path"));
        bool known = false;
        for (size_t k = 0; name && k < sizeof names / sizeof *names; k++)
            known |= strcmp(name, names[k]) == 0;
        json_t *list = all && known ? array_at(all, name) : NULL;
        if (!path || !list) {
            snprintf(err, QC_ERR_LEN, "the spec's hook %zu has no path or an unknown hookName", i);
            return -EINVAL;
        }
        json_t *oh = json_pack("{s:s}", "path", path);
        static const char *const keys[] = {"args", "env", "timeout"};
        for (size_t k = 0; k < 3; k++) {
            json_t *v = json_object_get(h, keys[k]);
            if (v)
                json_object_set(oh, keys[k], v);
        }
        json_array_append_new(list, oh);
    }
    return 0;
}

static int apply_nodes(json_t *config, const json_t *nodes, char *err)
{
    json_t *linux_ = object_at(config, "linux");
    json_t *devices = linux_ ? array_at(linux_, "devices") : NULL;
    json_t *res = linux_ ? object_at(linux_, "resources") : NULL;
    json_t *allow = res ? array_at(res, "devices") : NULL;
    if (!devices || !allow) {
        snprintf(err, QC_ERR_LEN, "the config's linux.devices or linux.resources is malformed");
        return -EINVAL;
    }
    size_t i;
    json_t *d;
    json_array_foreach(nodes, i, d)
    {
        const char *path = json_string_value(json_object_get(d, "path"));
        const char *host = json_string_value(json_object_get(d, "hostPath"));
        const char *perms = json_string_value(json_object_get(d, "permissions"));
        struct stat st;
        if (!path || stat(host ? host : path, &st) < 0 ||
            (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))) {
            snprintf(err, QC_ERR_LEN, "the spec's device node %zu (%.160s) is not a device here", i,
                     host   ? host
                     : path ? path
                            : "no path");
            return -EINVAL;
        }
        const char *type = S_ISCHR(st.st_mode) ? "c" : "b";
        json_int_t major = major(st.st_rdev), minor = minor(st.st_rdev);
        remove_where(devices, "path", path);
        json_array_append_new(devices, json_pack("{s:s, s:s, s:I, s:I, s:i}", "path", path, "type",
                                                 type, "major", major, "minor", minor, "fileMode",
                                                 (int)(st.st_mode & 0777)));
        json_array_append_new(allow, json_pack("{s:b, s:s, s:I, s:I, s:s}", "allow", 1, "type",
                                               type, "major", major, "minor", minor, "access",
                                               perms ? perms : "rwm"));
    }
    return 0;
}

/* Applies one containerEdits object. */
static int apply_edits(json_t *config, const json_t *edits, char *err)
{
    if (!edits)
        return 0;
    if (!json_is_object(edits)) {
        snprintf(err, QC_ERR_LEN, "the spec's containerEdits is not an object");
        return -EINVAL;
    }
    static const char *const keys[] = {"env", "mounts", "hooks", "deviceNodes"};
    int (*const fns[])(json_t *, const json_t *, char *) = {apply_env, apply_mounts, apply_hooks,
                                                            apply_nodes};
    for (size_t k = 0; k < 4; k++) {
        json_t *v = json_object_get(edits, keys[k]);
        if (!v)
            continue;
        if (!json_is_array(v)) {
            snprintf(err, QC_ERR_LEN, "the spec's %s is not a list", keys[k]);
            return -EINVAL;
        }
        int rc = fns[k](config, v, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int qc_oci_apply(json_t *config, const json_t *spec, const char *name, char err[QC_ERR_LEN])
{
    json_t *devices = json_object_get(spec, "devices"), *dev = NULL, *d;
    size_t i;
    json_array_foreach(devices, i, d)
    {
        const char *n = json_string_value(json_object_get(d, "name"));
        if (n && strcmp(n, name) == 0)
            dev = d;
    }
    if (!dev) {
        snprintf(err, QC_ERR_LEN, "the spec has no device '%.64s'", name);
        return -ENOENT;
    }
    if (!json_is_object(config)) {
        snprintf(err, QC_ERR_LEN, "the config is not a JSON object");
        return -EINVAL;
    }
    int rc = apply_edits(config, json_object_get(spec, "containerEdits"), err);
    return rc < 0 ? rc : apply_edits(config, json_object_get(dev, "containerEdits"), err);
}

json_t *qc_json_load(const char *path, char err[QC_ERR_LEN])
{
    struct stat st;
    if (stat(path, &st) < 0) {
        snprintf(err, QC_ERR_LEN, "cannot read %.200s: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_JSON) {
        snprintf(err, QC_ERR_LEN, "%.200s is not a JSON file of at most 16 MiB", path);
        return NULL;
    }
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (!doc)
        snprintf(err, QC_ERR_LEN, "%.160s:%d: %.60s", path, je.line, je.text);
    return doc;
}

int qc_json_save(const json_t *doc, const char *path, int mode, char err[QC_ERR_LEN])
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%.4000s.qvgpu.tmp", path);
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        snprintf(err, QC_ERR_LEN, "out of memory writing %.200s", path);
        return -ENOMEM;
    }
    int rc = 0, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    size_t len = strlen(text);
    if (fd < 0 || fchmod(fd, (mode_t)mode) < 0 || write(fd, text, len) != (ssize_t)len ||
        fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    free(text);
    if (rc < 0) {
        unlink(tmp);
        snprintf(err, QC_ERR_LEN, "cannot write %.200s: %s", path, strerror(-rc));
    }
    return rc;
}
