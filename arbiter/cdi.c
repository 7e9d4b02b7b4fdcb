/* cdi.c - CDI spec files of the vGPUs (see cdi.h). Loop thread only. */
#include "arbiter/cdi.h"

#include "arbiter/version.h"
#include "proto/container.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DRIVER_FILES 64
#define SPEC_PREFIX QP_CDI_SPEC_PREFIX
#define SPEC_SUFFIX ".json"
#define HOOK_TIMEOUT_S 10

/* A host path and where it goes in the container. */
struct entry {
    char host[PATH_MAX];
    char ctr[PATH_MAX];
};

struct qa_cdi {
    char dir[PATH_MAX];                  /* the CDI dir */
    char bundle[PATH_MAX];               /* the shim bundle, resolved: a versioned dir */
    char tenant_dir[PATH_MAX];           /* the arbiter's tenant dir */
    char creds_dir[PATH_MAX];            /* credentials files, one per vGPU (0700) */
    bool preload;                        /* ld.so.preload mode */
    bool driver;                         /* a driver is embedded (libs and nodes below) */
    struct entry libs[MAX_DRIVER_FILES]; /* driver libraries: file and mount point */
    size_t nlibs;
    struct entry nodes[MAX_DRIVER_FILES]; /* device nodes: host node and path inside */
    size_t nnodes;
};

/* ---- setting up ---------------------------------------------------------------------- */

static bool is_file(const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* Finds the bundle (see qa_cdi_new) into self->bundle. Returns 0 or -ENOENT with err. */
static int find_bundle(qa_cdi_t *self, const char *given, char *err)
{
    char tries[2][PATH_MAX], exe[PATH_MAX];
    int n = 0;
    if (given) {
        snprintf(tries[n++], PATH_MAX, "%s", given);
    } else {
        ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (len <= 0) {
            snprintf(err, QP_ERR_LEN, "cannot find the shim bundle: give --cdi-bundle DIR");
            return -ENOENT;
        }
        exe[len] = '\0';
        const char *dir = dirname(exe);
        snprintf(tries[n++], PATH_MAX, "%.3000s/../lib/qvgpu/%s", dir, QA_VERSION);
        snprintf(tries[n++], PATH_MAX, "%.3000s/bundle", dir);
    }
    for (int i = 0; i < n; i++) {
        if (realpath(tries[i], self->bundle) && is_file(self->bundle, QP_BUNDLE_SHIM) &&
            is_file(self->bundle, QP_BUNDLE_HOOK))
            return 0;
    }
    snprintf(err, QP_ERR_LEN,
             "no shim bundle (%s and %s) in %.120s%s: install it (make install) or give "
             "--cdi-bundle DIR",
             QP_BUNDLE_SHIM, QP_BUNDLE_HOOK, tries[0], n > 1 ? " or next to qarbiter" : "");
    return -ENOENT;
}

/* Directories of a root where drivers keep their libraries. */
static const char *const lib_dirs[] = {"usr/lib/x86_64-linux-gnu",
                                       "lib/x86_64-linux-gnu",
                                       "usr/lib/aarch64-linux-gnu",
                                       "usr/lib64",
                                       "lib64",
                                       "usr/lib"};

static bool driver_lib(const char *name)
{
    return (strncmp(name, "libcuda.so", 10) == 0 || strncmp(name, "libnvidia-", 10) == 0) &&
           strstr(name, ".so");
}

/* Collects the driver under root: its libraries (each mounted at its path below root,
 * a symlink as the file it names) and its /dev/nvidia* nodes. Returns 0, or -ENOENT with
 * err when there is no libcuda.so.1 under root. */
static int scan_driver(qa_cdi_t *self, const char *root, char *err)
{
    char rroot[PATH_MAX];
    if (!realpath(root, rroot)) {
        snprintf(err, QP_ERR_LEN, "--cdi-driver-root %.150s: %s", root, strerror(errno));
        return -ENOENT;
    }
    bool libcuda = false;
    for (size_t d = 0; d < sizeof lib_dirs / sizeof *lib_dirs; d++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%.3000s/%s", strcmp(rroot, "/") ? rroot : "", lib_dirs[d]);
        DIR *dh = opendir(dir);
        if (!dh)
            continue;
        struct dirent *de;
        while ((de = readdir(dh)) && self->nlibs < MAX_DRIVER_FILES) {
            char path[PATH_MAX * 2], real[PATH_MAX];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            if (!driver_lib(de->d_name) || !realpath(path, real) || stat(real, &st) < 0 ||
                !S_ISREG(st.st_mode))
                continue;
            struct entry *e = &self->libs[self->nlibs++];
            snprintf(e->host, sizeof e->host, "%s", real);
            snprintf(e->ctr, sizeof e->ctr, "/%s/%.200s", lib_dirs[d], de->d_name);
            libcuda |= strcmp(de->d_name, "libcuda.so.1") == 0;
        }
        closedir(dh);
    }
    if (!libcuda) {
        snprintf(err, QP_ERR_LEN,
                 "--cdi-driver-root %.150s: no libcuda.so.1 under it (looked in usr/lib/"
                 "x86_64-linux-gnu, usr/lib64 and the like)",
                 root);
        return -ENOENT;
    }
    char dev[PATH_MAX];
    snprintf(dev, sizeof dev, "%.3000s/dev", strcmp(rroot, "/") ? rroot : "");
    DIR *dh = opendir(dev);
    struct dirent *de;
    while (dh && (de = readdir(dh)) && self->nnodes < MAX_DRIVER_FILES) {
        char path[PATH_MAX * 2];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dev, de->d_name);
        if (strncmp(de->d_name, "nvidia", 6) != 0 || stat(path, &st) < 0 || !S_ISCHR(st.st_mode))
            continue;
        struct entry *e = &self->nodes[self->nnodes++];
        snprintf(e->host, sizeof e->host, "%.3000s", path);
        snprintf(e->ctr, sizeof e->ctr, "/dev/%.200s", de->d_name);
    }
    if (dh)
        closedir(dh);
    self->driver = true;
    return 0;
}

/* mkdir -p of dir with mode for what it makes. */
static int make_dirs(const char *dir, mode_t mode)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    if (mkdir(p, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

qa_cdi_t *qa_cdi_new(const qa_cdi_opts_t *opts, const char *tenant_dir, const char *creds_dir,
                     char err[QP_ERR_LEN])
{
    qa_cdi_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    self->preload = opts->preload;
    snprintf(self->tenant_dir, sizeof self->tenant_dir, "%s", tenant_dir);
    snprintf(self->creds_dir, sizeof self->creds_dir, "%s", creds_dir);
    const char *dir = opts->dir ? opts->dir : QA_CDI_DEFAULT_DIR;
    int rc = make_dirs(dir, 0755);
    if (rc < 0 || !realpath(dir, self->dir)) {
        snprintf(err, QP_ERR_LEN, "cannot create the CDI dir %.150s: %s", dir,
                 strerror(rc < 0 ? -rc : errno));
        goto fail;
    }
    if (find_bundle(self, opts->bundle, err) < 0)
        goto fail;
    if (opts->driver_root && scan_driver(self, opts->driver_root, err) < 0)
        goto fail;
    /* Only root may enter: the files in it hold secrets and are 0444, to be readable
     * by a container's users once mounted. */
    if ((rc = make_dirs(creds_dir, 0700)) < 0 || chmod(creds_dir, 0700) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot create %.150s: %s", creds_dir,
                 strerror(rc < 0 ? -rc : errno));
        goto fail;
    }
    /* The mount point of each container's credentials, inside the read-only tenant dir. */
    char ph[PATH_MAX + 16];
    snprintf(ph, sizeof ph, "%s/%s", tenant_dir, QP_CTR_VGPU_FILE_NAME);
    int fd = open(ph, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (fd < 0 || fchmod(fd, 0444) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot create %.150s: %s", ph, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto fail;
    }
    close(fd);
    return self;
fail:
    free(self);
    return NULL;
}

void qa_cdi_destroy(qa_cdi_t **self_p)
{
    free(*self_p);
    *self_p = NULL;
}

const char *qa_cdi_dir(const qa_cdi_t *self)
{
    return self->dir;
}

const char *qa_cdi_bundle(const qa_cdi_t *self)
{
    return self->bundle;
}

/* ---- the spec ------------------------------------------------------------------------ */

static json_t *bind_mount(const char *host, const char *ctr)
{
    return json_pack("{s:s, s:s, s:s, s:[s, s, s, s]}", "hostPath", host, "containerPath", ctr,
                     "type", "bind", "options", "ro", "nosuid", "nodev", "rbind");
}

static json_t *envvar(const char *name, const char *value)
{
    char buf[PATH_MAX + 64];
    snprintf(buf, sizeof buf, "%s=%s", name, value);
    return json_string(buf);
}

static json_t *spec_json(const qa_cdi_t *self, const qa_vgpu_t *v, const char *gpu_uuid)
{
    char creds[PATH_MAX + 64], path[PATH_MAX + 64];
    snprintf(creds, sizeof creds, "%s/%s", self->creds_dir, v->id);
    json_t *env = json_array(), *mounts = json_array(), *nodes = json_array();
    json_array_append_new(env, envvar("QVGPU_VGPU", v->id));
    json_array_append_new(env, envvar("QVGPU_SECRET", v->secret));
    json_array_append_new(env, envvar("QVGPU_SOCKET_DIR", QP_CTR_SOCKET_DIR));
    json_array_append_new(env, envvar("CUDA_VISIBLE_DEVICES", gpu_uuid));
    /* In preload mode the image's own LD_PRELOAD is kept: ld.so.preload loads the shim. */
    if (!self->preload)
        json_array_append_new(env, envvar("LD_PRELOAD", QP_CTR_SHIM));
    json_array_append_new(mounts, bind_mount(self->tenant_dir, QP_CTR_SOCKET_DIR));
    json_array_append_new(mounts, bind_mount(creds, QP_CTR_VGPU_FILE));
    json_array_append_new(mounts, bind_mount(self->bundle, QP_CTR_BUNDLE_DIR));
    if (self->preload) {
        snprintf(path, sizeof path, "%s/%s", self->bundle, QP_BUNDLE_PRELOAD);
        json_array_append_new(mounts, bind_mount(path, QP_CTR_LD_SO_PRELOAD));
    }
    for (size_t i = 0; i < self->nlibs; i++)
        json_array_append_new(mounts, bind_mount(self->libs[i].host, self->libs[i].ctr));
    for (size_t i = 0; i < self->nnodes; i++)
        json_array_append_new(nodes, json_pack("{s:s, s:s}", "path", self->nodes[i].ctr, "hostPath",
                                               self->nodes[i].host));
    snprintf(path, sizeof path, "%s/%s", self->bundle, QP_BUNDLE_HOOK);
    json_t *args = json_pack("[s, s, s, s, s, s]", QP_BUNDLE_HOOK, "preflight", "--tenant-dir",
                             self->tenant_dir, "--shim", QP_CTR_SHIM);
    if (self->preload)
        json_array_append_new(args, json_string("--preload"));
    /* An environment of its own: without one, runc hands the hook the container's,
     * LD_PRELOAD of the container's path included. */
    json_t *hook = json_pack("{s:s, s:s, s:o, s:[s], s:i}", "hookName", "createContainer", "path",
                             path, "args", args, "env",
                             "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                             "timeout", HOOK_TIMEOUT_S);
    json_t *edits = json_pack("{s:o, s:o, s:[o]}", "env", env, "mounts", mounts, "hooks", hook);
    if (edits && json_array_size(nodes))
        json_object_set(edits, "deviceNodes", nodes);
    json_decref(nodes);
    return json_pack("{s:s, s:s, s:[{s:s, s:o}]}", "cdiVersion", QP_CDI_VERSION, "kind",
                     QP_CDI_KIND, "devices", "name", v->id, "containerEdits", edits);
}

char *qa_cdi_spec(const qa_cdi_t *self, const qa_vgpu_t *v, const char *gpu_uuid)
{
    json_t *spec = spec_json(self, v, gpu_uuid);
    char *text = spec ? json_dumps(spec, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(spec);
    return text;
}

int qa_cdi_devices(const qa_cdi_t *self, const qa_vgpu_t *v, const char *gpu_uuid,
                   char names[2][160])
{
    snprintf(names[0], sizeof names[0], "%s=%s", QP_CDI_KIND, v->id);
    if (self->driver)
        return 1;
    snprintf(names[1], sizeof names[1], "nvidia.com/gpu=%.100s", gpu_uuid);
    return 2;
}

/* ---- files --------------------------------------------------------------------------- */

/* Writes text as dir/name with mode: under a temporary name (not *.json, which runtimes
 * would read half written), synced, then renamed over the old one. */
static int write_file(const char *dir, const char *name, const char *text, mode_t mode, char *err)
{
    char tmp[PATH_MAX + 64], path[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
    int rc = 0;
    size_t len = strlen(text);
    if (fd < 0 || fchmod(fd, mode) < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) < 0)
        rc = -errno;
    if (rc < 0) {
        unlink(tmp);
        snprintf(err, QP_ERR_LEN, "cannot write %.200s: %s", path, strerror(-rc));
    }
    return rc;
}

static void spec_name(const char *id, char out[QP_ID_LEN + 16])
{
    snprintf(out, QP_ID_LEN + 16, SPEC_PREFIX "%s" SPEC_SUFFIX, id);
}

char *qa_cdi_path(const qa_cdi_t *self, const char *id, char *out)
{
    char name[QP_ID_LEN + 16];
    spec_name(id, name);
    snprintf(out, PATH_MAX, "%.4000s/%s", self->dir, name);
    return out;
}

int qa_cdi_put(qa_cdi_t *self, const qa_vgpu_t *v, const char *gpu_uuid, char err[QP_ERR_LEN])
{
    char creds[512], name[QP_ID_LEN + 16];
    snprintf(creds, sizeof creds, "QVGPU_VGPU=%s\nQVGPU_SECRET=%s\nCUDA_VISIBLE_DEVICES=%s\n",
             v->id, v->secret, gpu_uuid);
    int rc = write_file(self->creds_dir, v->id, creds, 0444, err);
    if (rc < 0)
        return rc;
    char *text = qa_cdi_spec(self, v, gpu_uuid);
    if (!text) {
        snprintf(err, QP_ERR_LEN, "out of memory for the CDI spec of %s", v->id);
        return -ENOMEM;
    }
    spec_name(v->id, name);
    rc = write_file(self->dir, name, text, 0600, err);
    free(text);
    return rc;
}

static int remove_file(const char *dir, const char *name, char *err)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (unlink(path) < 0 && errno != ENOENT) {
        int e = errno;
        snprintf(err, QP_ERR_LEN, "cannot remove %.200s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

int qa_cdi_remove(qa_cdi_t *self, const char *id, char err[QP_ERR_LEN])
{
    char name[QP_ID_LEN + 16];
    spec_name(id, name);
    int rc = remove_file(self->dir, name, err);
    int rc2 = remove_file(self->creds_dir, id, rc < 0 ? (char[QP_ERR_LEN]){0} : err);
    return rc < 0 ? rc : rc2;
}

/* The vGPU id a file of ours in dir is for, into id; false for other files. In the CDI
 * dir ours are qvgpu-<id>.json; in the credentials dir, <id>. */
static bool file_id(const char *name, bool spec, char id[QP_ID_LEN])
{
    size_t n = strlen(name);
    if (spec) {
        size_t p = strlen(SPEC_PREFIX), s = strlen(SPEC_SUFFIX);
        if (n <= p + s || strncmp(name, SPEC_PREFIX, p) != 0 || strcmp(name + n - s, SPEC_SUFFIX))
            return false;
        n -= p + s;
        name += p;
    }
    if (n == 0 || n >= QP_ID_LEN || name[0] == '.')
        return false;
    memcpy(id, name, n);
    id[n] = '\0';
    return true;
}

/* Whether the spec at path is this arbiter's: it mounts our tenant dir. Another
 * arbiter's (another tenant dir) is left alone. */
static bool spec_is_ours(const qa_cdi_t *self, const char *path)
{
    json_t *spec = json_load_file(path, 0, NULL);
    json_t *dev = json_array_get(json_object_get(spec, "devices"), 0);
    json_t *mounts = json_object_get(json_object_get(dev, "containerEdits"), "mounts"), *m;
    size_t i;
    bool ours = false;
    json_array_foreach(mounts, i, m)
    {
        const char *ctr = json_string_value(json_object_get(m, "containerPath"));
        const char *host = json_string_value(json_object_get(m, "hostPath"));
        if (ctr && host && strcmp(ctr, QP_CTR_SOCKET_DIR) == 0)
            ours = strcmp(host, self->tenant_dir) == 0;
    }
    json_decref(spec);
    return ours;
}

/* Removes the files of dir that are ours and for no vGPU of host. */
static int prune(const qa_cdi_t *self, const char *dir, bool spec, qa_host_t *host,
                 unsigned *removed, char *err)
{
    DIR *dh = opendir(dir);
    if (!dh) {
        snprintf(err, QP_ERR_LEN, "cannot read %.200s: %s", dir, strerror(errno));
        return -EIO;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        char id[QP_ID_LEN], path[PATH_MAX + 64];
        if (!file_id(de->d_name, spec, id) || qa_host_find(host, id))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (spec && !spec_is_ours(self, path))
            continue;
        int r = remove_file(dir, de->d_name, err);
        if (r == 0 && spec)
            (*removed)++;
        rc = rc < 0 ? rc : r;
    }
    closedir(dh);
    return rc;
}

int qa_cdi_sync(qa_cdi_t *self, qa_host_t *host, unsigned *written, unsigned *removed,
                char err[QP_ERR_LEN])
{
    int rc = 0;
    *written = *removed = 0;
    for (size_t i = 0; i < qa_host_nvgpus(host); i++) {
        const qa_vgpu_t *v = qa_host_vgpu(host, i);
        char e[QP_ERR_LEN];
        int r = qa_cdi_put(self, v, qa_host_gpu(host, v->gpu)->desc.uuid, e);
        if (r == 0)
            (*written)++;
        else if (rc == 0) {
            rc = r;
            snprintf(err, QP_ERR_LEN, "%s", e);
        }
    }
    char e[QP_ERR_LEN];
    int r = prune(self, self->dir, true, host, removed, e);
    if (r == 0)
        r = prune(self, self->creds_dir, false, host, removed, e);
    if (r < 0 && rc == 0) {
        rc = r;
        snprintf(err, QP_ERR_LEN, "%s", e);
    }
    return rc;
}
