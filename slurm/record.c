/* record.c - the per-job file between the job prolog and the job's steps. */
#include "slurm/record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The fields as they are named in the file, and where each one goes. */
#define FIELD(name, member)                                                                        \
    {                                                                                              \
        name, offsetof(qsl_record_t, member), sizeof(((qsl_record_t *)0)->member)                  \
    }
static const struct {
    const char *name;
    size_t off, size;
} fields[] = {
    FIELD("vgpu", vgpu), FIELD("secret", secret),   FIELD("socket_dir", socket_dir),
    FIELD("gpu", gpu),   FIELD("preload", preload), FIELD("error", error),
};
#define NFIELDS (sizeof fields / sizeof fields[0])

/* The same, by the variable `qgpuctl env` prints. */
static const struct {
    const char *var;
    size_t field;
} env_vars[] = {
    {"QVGPU_VGPU", 0},           {"QVGPU_SECRET", 1}, {"QVGPU_SOCKET_DIR", 2},
    {"CUDA_VISIBLE_DEVICES", 3}, {"LD_PRELOAD", 4},
};
#define NVARS (sizeof env_vars / sizeof env_vars[0])

void qsl_one_line(char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
    }
}

/* Copies len bytes of src into field i of rec; false when they do not fit. */
static bool set_field(qsl_record_t *rec, size_t i, const char *src, size_t len)
{
    if (len >= fields[i].size)
        return false;
    char *dst = (char *)rec + fields[i].off;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return true;
}

int qsl_record_from_env(const char *text, qsl_record_t *rec, char err[QSL_ERR_LEN])
{
    bool seen[NVARS] = {false};
    for (const char *line = text; *line;) {
        size_t n = strcspn(line, "\n");
        const char *eq = memchr(line, '=', n);
        if (n > 7 && memcmp(line, "export ", 7) == 0 && eq && eq[1] == '\'') {
            const char *name = line + 7;
            size_t nlen = (size_t)(eq - name);
            /* the value is single-quoted, a quote in it written '\'' */
            char value[2 * PATH_MAX];
            size_t v = 0;
            const char *p = eq + 2, *end = line + n;
            bool closed = false;
            while (p < end && v < sizeof value - 1) {
                if (*p != '\'') {
                    value[v++] = *p++;
                } else if (end - p >= 4 && memcmp(p, "'\\''", 4) == 0) {
                    value[v++] = '\'';
                    p += 4;
                } else {
                    closed = p + 1 == end;
                    break;
                }
            }
            value[v] = '\0';
            for (size_t i = 0; i < NVARS; i++) {
                if (strlen(env_vars[i].var) != nlen || memcmp(env_vars[i].var, name, nlen) != 0)
                    continue;
                if (!closed || v == 0 || !set_field(rec, env_vars[i].field, value, v)) {
                    qsl_say(err, "qgpuctl env printed a malformed %s", env_vars[i].var);
                    return -EPROTO;
                }
                seen[i] = true;
            }
        }
        line += n + (line[n] == '\n');
    }
    for (size_t i = 0; i < NVARS; i++) {
        if (!seen[i]) {
            qsl_say(err, "qgpuctl env did not print %s", env_vars[i].var);
            return -EPROTO;
        }
    }
    return 0;
}

static void file_name(char out[PATH_MAX + 16], const char *dir, uint32_t job, const char *suffix)
{
    snprintf(out, PATH_MAX + 16, "%s/%u%s", dir, job, suffix);
}

int qsl_record_write(const char *dir, uint32_t job, const qsl_record_t *rec, char err[QSL_ERR_LEN])
{
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        qsl_say(err, "cannot make %s: %s", dir, strerror(e));
        return -e;
    }
    char tmp[PATH_MAX + 16], path[PATH_MAX + 16];
    file_name(path, dir, job, "");
    file_name(tmp, dir, job, ".new");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        qsl_say(err, "cannot write %s: %s", tmp, strerror(e));
        return -e;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        qsl_say(err, "cannot write %s: %s", tmp, strerror(e));
        return -e;
    }
    for (size_t i = 0; i < NFIELDS; i++) {
        const char *v = (const char *)rec + fields[i].off;
        if (*v && !strchr(v, '\n'))
            fprintf(f, "%s=%s\n", fields[i].name, v);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) < 0) {
        int e = errno ? errno : EIO;
        unlink(tmp);
        qsl_say(err, "cannot write %s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

int qsl_record_read(const char *dir, uint32_t job, qsl_record_t *rec, char err[QSL_ERR_LEN])
{
    memset(rec, 0, sizeof *rec);
    char path[PATH_MAX + 16];
    file_name(path, dir, job, "");
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e != ENOENT)
            qsl_say(err, "cannot read %s: %s", path, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077)) {
        close(fd);
        qsl_say(err, "%s is not a private file of uid %u: not trusted", path, (unsigned)geteuid());
        return -EPERM;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        int e = errno;
        close(fd);
        qsl_say(err, "cannot read %s: %s", path, strerror(e));
        return -e;
    }
    char line[2 * PATH_MAX + 32];
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\n");
        line[n] = '\0';
        char *eq = strchr(line, '=');
        for (size_t i = 0; eq && i < NFIELDS; i++) {
            if (strlen(fields[i].name) == (size_t)(eq - line) &&
                memcmp(fields[i].name, line, (size_t)(eq - line)) == 0)
                set_field(rec, i, eq + 1, strlen(eq + 1));
        }
    }
    fclose(f);
    if (!rec->vgpu[0] && !rec->error[0]) {
        qsl_say(err, "%s names neither a vGPU nor an error", path);
        return -EPROTO;
    }
    return 0;
}

int qsl_record_remove(const char *dir, uint32_t job)
{
    char path[PATH_MAX + 16];
    file_name(path, dir, job, "");
    return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

/* Appends the entry of len bytes at s to out (used bytes *n) after a ':'. */
static bool append(char *out, size_t len, size_t *n, const char *s, size_t slen)
{
    if (*n + (*n > 0) + slen + 1 > len)
        return false;
    if (*n > 0)
        out[(*n)++] = ':';
    memcpy(out + *n, s, slen);
    *n += slen;
    out[*n] = '\0';
    return true;
}

/* Is the entry of slen bytes at s one of the ':'- or ' '-separated entries of list? */
static bool listed(const char *list, const char *s, size_t slen)
{
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ": ");
        if (n == slen && memcmp(p, s, n) == 0)
            return true;
        p += n + (p[n] != '\0');
    }
    return false;
}

int qsl_record_preload(const qsl_record_t *rec, const char *user, char *out, size_t len)
{
    size_t n = 0;
    const char *mine = rec->preload;
    const char *last = strrchr(mine, ':');
    last = last ? last + 1 : mine;
    if (len == 0)
        return -ENAMETOOLONG;
    out[0] = '\0';
    /* what qgpuctl put before the shim */
    if (last > mine && !append(out, len, &n, mine, (size_t)(last - mine - 1)))
        return -ENAMETOOLONG;
    for (const char *p = user; p && *p;) {
        size_t k = strcspn(p, ": ");
        if (k > 0 && !listed(mine, p, k) && !append(out, len, &n, p, k))
            return -ENAMETOOLONG;
        p += k + (p[k] != '\0');
    }
    return append(out, len, &n, last, strlen(last)) ? 0 : -ENAMETOOLONG;
}
