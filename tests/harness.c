/* harness.c - test support: temporary directories, private simulated hosts, children.
 * Single-threaded: the test's main thread calls it; atexit undoes what it made. */
#include "tests/harness.h"

#include "client/asan.h"
#include "proto/sockpath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct qt_proc {
    pid_t pid;       /* 0 once reaped */
    int status;      /* as qt_proc_wait returns, valid once pid is 0 */
    int out_fd;      /* owned: unlinked temporary file holding the child's stdout */
    int err_fd;      /* owned: the same for stderr */
    char *out_text;  /* owned: last text read from out_fd */
    char *err_text;  /* owned: last text read from err_fd */
    qt_proc_t *next; /* in the list of live children killed at exit */
};

struct qt_arbiter {
    char *root;        /* owned: directory holding the two below and the config */
    char *socket_dir;  /* owned */
    char *state_dir;   /* owned */
    char *config_path; /* owned; NULL when started without a config */
    char **env;        /* owned: copy of the extra environment, NULL-terminated */
    char *http;        /* owned: the value of --http ("off" unless asked for) */
    char **args;       /* owned: copy of the extra arguments, NULL-terminated */
    qt_proc_t *proc;   /* owned; NULL while killed */
};

/* Everything the process must undo at exit. */
static struct {
    bool registered;    /* atexit handler installed */
    char **dirs;        /* owned: directories to remove */
    size_t ndirs;       /* entries in dirs */
    char *sim_ns;       /* owned: namespace from qt_sim_private, or NULL */
    qt_proc_t *procs;   /* children not yet destroyed */
    unsigned counter;   /* makes names unique within the process */
} h;

static void die(const char *what)
{
    fprintf(stderr, "harness: %s: %s\n", what, strerror(errno));
    exit(99);
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        die("strdup");
    return p;
}

char *qt_strf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        die("vasprintf");
    return s;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void remove_sim_host(const char *ns)
{
    char prefix[NAME_MAX];
    snprintf(prefix, sizeof prefix, "qsim-%s", ns);
    DIR *d = opendir("/dev/shm");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

static void cleanup(void)
{
    while (h.procs) {
        qt_proc_t *p = h.procs;
        qt_proc_destroy(&p);
    }
    for (size_t i = 0; i < h.ndirs; i++) {
        nftw(h.dirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        free(h.dirs[i]);
    }
    free(h.dirs);
    h.dirs = NULL;
    h.ndirs = 0;
    if (h.sim_ns) {
        remove_sim_host(h.sim_ns);
        free(h.sim_ns);
        h.sim_ns = NULL;
    }
}

static void ensure_cleanup(void)
{
    if (!h.registered) {
        atexit(cleanup);
        h.registered = true;
    }
}

/* ---- paths and time ---------------------------------------------------------------- */

const char *qt_build(void)
{
    static char *dir;
    if (!dir) {
        const char *env = getenv("QVGPU_BUILD");
        char *abs = realpath(env && *env ? env : "build", NULL);
        dir = abs ? abs : xstrdup(env && *env ? env : "build");
    }
    return dir;
}

char *qt_build_path(const char *rel)
{
    return qt_strf("%s/%s", qt_build(), rel);
}

char *qt_tmpdir(void)
{
    ensure_cleanup();
    char *dir = xstrdup("/tmp/qt-XXXXXX");
    if (!mkdtemp(dir))
        die("mkdtemp");
    char **dirs = realloc(h.dirs, (h.ndirs + 1) * sizeof *dirs);
    if (!dirs)
        die("realloc");
    h.dirs = dirs;
    h.dirs[h.ndirs++] = xstrdup(dir);
    return dir;
}

uint64_t qt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void qt_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

bool qt_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms)
{
    uint64_t end = qt_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        if (cond(arg))
            return true;
        if (qt_now_ns() >= end)
            return false;
        qt_sleep_ms(1);
    }
}

/* ---- a private simulated host ------------------------------------------------------ */

const char *qt_sim_private(const char *gpus)
{
    ensure_cleanup();
    if (h.sim_ns) {
        remove_sim_host(h.sim_ns);
        free(h.sim_ns);
    }
    h.sim_ns = qt_strf("qt-%d-%u", (int)getpid(), h.counter++);
    setenv("QSIM_NAMESPACE", h.sim_ns, 1);
    if (gpus)
        setenv("QSIM_GPUS", gpus, 1);
    else
        unsetenv("QSIM_GPUS");
    return h.sim_ns;
}

bool qt_driver_simulated(void)
{
    const char *d = getenv("QV_TEST_DRIVER");
    return !d || strcmp(d, "real") != 0;
}

/* ---- child processes --------------------------------------------------------------- */

/* environ with the changes in env applied; the array is the caller's, the strings are
 * borrowed from environ and env. */
static char **merged_env(const char *const env[])
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (env && env[m])
        m++;
    char **out = calloc(n + m + 1, sizeof *out);
    if (!out)
        die("calloc");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool overridden = false;
        for (size_t j = 0; j < m && !overridden; j++) {
            size_t len = strcspn(env[j], "=");
            overridden = strncmp(environ[i], env[j], len) == 0 && environ[i][len] == '=';
        }
        if (!overridden)
            out[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++) {
        if (strchr(env[j], '='))
            out[k++] = (char *)env[j];
    }
    out[k] = NULL;
    return out;
}

static int capture_fd(void)
{
    char path[] = "/tmp/qt-out-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp");
    unlink(path);
    return fd;
}

qt_proc_t *qt_spawn(const char *const argv[], const char *const env[])
{
    ensure_cleanup();
    qt_proc_t *p = calloc(1, sizeof *p);
    if (!p)
        die("calloc");
    p->out_fd = capture_fd();
    p->err_fd = capture_fd();

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p->out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, p->err_fd, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    /* Own process group: a test can signal a workload and all its children at once. */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);

    char **envp = merged_env(env);
    int rc = posix_spawnp(&p->pid, argv[0], &fa, &attr, (char *const *)argv, envp);
    free(envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        fprintf(stderr, "harness: cannot start %s: %s\n", argv[0], strerror(rc));
        close(p->out_fd);
        close(p->err_fd);
        free(p);
        return NULL;
    }
    p->next = h.procs;
    h.procs = p;
    return p;
}

pid_t qt_proc_pid(const qt_proc_t *self)
{
    return self->pid;
}

static void reaped(qt_proc_t *self, int wstatus)
{
    self->pid = 0;
    self->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
}

int qt_proc_wait(qt_proc_t *self, int timeout_ms)
{
    uint64_t end = qt_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (self->pid) {
        int ws;
        pid_t r = waitpid(self->pid, &ws, WNOHANG);
        if (r == self->pid) {
            reaped(self, ws);
            break;
        }
        if (r < 0 && errno != EINTR)
            die("waitpid");
        if (qt_now_ns() >= end) {
            kill(-self->pid, SIGKILL);
            kill(self->pid, SIGKILL);
            while (waitpid(self->pid, &ws, 0) < 0 && errno == EINTR)
                ;
            self->pid = 0;
            self->status = -ETIMEDOUT;
            break;
        }
        qt_sleep_ms(1);
    }
    return self->status;
}

void qt_proc_kill(qt_proc_t *self, int sig)
{
    if (self->pid)
        kill(self->pid, sig);
}

static const char *read_all(int fd, char **text)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        die("fstat");
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        die("malloc");
    ssize_t n = pread(fd, buf, (size_t)st.st_size, 0);
    buf[n > 0 ? n : 0] = '\0';
    free(*text);
    *text = buf;
    return buf;
}

const char *qt_proc_stdout(qt_proc_t *self)
{
    return read_all(self->out_fd, &self->out_text);
}

const char *qt_proc_stderr(qt_proc_t *self)
{
    return read_all(self->err_fd, &self->err_text);
}

void qt_proc_destroy(qt_proc_t **self_p)
{
    qt_proc_t *self = *self_p;
    if (!self)
        return;
    if (self->pid) {
        kill(-self->pid, SIGKILL);
        kill(self->pid, SIGKILL);
        int ws;
        while (waitpid(self->pid, &ws, 0) < 0 && errno == EINTR)
            ;
    }
    for (qt_proc_t **pp = &h.procs; *pp; pp = &(*pp)->next) {
        if (*pp == self) {
            *pp = self->next;
            break;
        }
    }
    close(self->out_fd);
    close(self->err_fd);
    free(self->out_text);
    free(self->err_text);
    free(self);
    *self_p = NULL;
}

int qt_run(const char *const argv[], const char *const env[], int timeout_ms, char **out,
           char **err)
{
    qt_proc_t *p = qt_spawn(argv, env);
    if (!p)
        return -ENOENT;
    int status = qt_proc_wait(p, timeout_ms);
    if (out)
        *out = xstrdup(qt_proc_stdout(p));
    if (err)
        *err = xstrdup(qt_proc_stderr(p));
    qt_proc_destroy(&p);
    return status;
}

const char *qt_asan_runtime(void)
{
    return qv_asan_runtime();
}

const char *qt_shim_preload(void)
{
    static char *value;
    if (!value) {
        char *shim = qt_build_path("libqshim.so");
        const char *asan = qt_asan_runtime();
        value = asan ? qt_strf("LD_PRELOAD=%s:%s", asan, shim) : qt_strf("LD_PRELOAD=%s", shim);
        free(shim);
    }
    return value;
}

const char *qt_foreign_preload(void)
{
    static char *value;
    if (!value) {
        const char *asan = qt_asan_runtime();
        value = asan ? qt_strf("LD_PRELOAD=%s", asan) : qt_strf("LD_PRELOAD");
    }
    return value;
}

/* ---- a real arbiter ---------------------------------------------------------------- */

/* True when something accepts connections on DIR/admin.sock. The file alone proves
 * nothing: a killed arbiter leaves it behind. */
static bool admin_socket_accepts(const char *socket_dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/admin.sock", socket_dir);
    return qp_sockpath_probe(path) == 0;
}

static bool arbiter_up_or_gone(void *arg)
{
    qt_arbiter_t *a = arg;
    if (admin_socket_accepts(a->socket_dir))
        return true;
    /* it exited: stop waiting, arbiter_spawn reports it */
    return a->proc && waitpid(a->proc->pid, NULL, WNOHANG) != 0;
}

static int arbiter_spawn(qt_arbiter_t *a)
{
    char *bin = qt_build_path("qarbiter");
    const char *argv[64] = {bin,         "--socket-dir", a->socket_dir, "--state-dir",
                            a->state_dir, "--http",      a->http};
    size_t n = 7;
    /* never the host's /etc/qvgpu/qarbiter.conf, which an installed package brings */
    argv[n++] = "--config";
    argv[n++] = a->config_path ? a->config_path : "off";
    for (char **arg = a->args; *arg && n < 63; arg++)
        argv[n++] = *arg;
    argv[n] = NULL;
    a->proc = qt_spawn(argv, (const char *const *)a->env);
    free(bin);
    if (!a->proc)
        return -1;
    qt_wait_until(arbiter_up_or_gone, a, 5000);
    if (!admin_socket_accepts(a->socket_dir)) {
        qt_proc_wait(a->proc, 100);
        fprintf(stderr, "harness: qarbiter did not come up:\n%s", qt_proc_stderr(a->proc));
        qt_proc_destroy(&a->proc);
        return -1;
    }
    return 0;
}

/* A NULL-terminated copy of list (may be NULL). */
static char **copy_list(const char *const list[])
{
    size_t n = 0;
    while (list && list[n])
        n++;
    char **copy = calloc(n + 1, sizeof *copy);
    if (!copy)
        die("calloc");
    for (size_t i = 0; i < n; i++)
        copy[i] = xstrdup(list[i]);
    return copy;
}

static qt_arbiter_t *arbiter_new(const char *config, const char *const env[], const char *http,
                                 const char *const args[])
{
    qt_arbiter_t *a = calloc(1, sizeof *a);
    if (!a)
        die("calloc");
    a->http = xstrdup(http);
    a->root = qt_tmpdir();
    a->socket_dir = qt_strf("%s/sock", a->root);
    a->state_dir = qt_strf("%s/state", a->root);
    if (mkdir(a->socket_dir, 0755) < 0 || mkdir(a->state_dir, 0700) < 0)
        die("mkdir");
    if (config) {
        a->config_path = qt_strf("%s/qarbiter.conf", a->root);
        FILE *f = fopen(a->config_path, "w");
        if (!f || fputs(config, f) < 0 || fclose(f) != 0)
            die("writing the arbiter config");
    }
    a->env = copy_list(env);
    a->args = copy_list(args);
    if (arbiter_spawn(a) < 0) {
        qt_arbiter_destroy(&a);
        return NULL;
    }
    return a;
}

qt_arbiter_t *qt_arbiter_start(const char *config, const char *const env[])
{
    return arbiter_new(config, env, "off", NULL);
}

qt_arbiter_t *qt_arbiter_start_http(const char *config, const char *const env[], const char *http)
{
    return arbiter_new(config, env, http, NULL);
}

qt_arbiter_t *qt_arbiter_start_args(const char *config, const char *const env[],
                                    const char *const args[])
{
    return arbiter_new(config, env, "off", args);
}

const char *qt_arbiter_socket_dir(const qt_arbiter_t *self)
{
    return self->socket_dir;
}

const char *qt_arbiter_state_dir(const qt_arbiter_t *self)
{
    return self->state_dir;
}

qt_proc_t *qt_arbiter_proc(qt_arbiter_t *self)
{
    return self->proc;
}

void qt_arbiter_kill(qt_arbiter_t *self, int sig)
{
    if (!self->proc)
        return;
    qt_proc_kill(self->proc, sig);
    qt_proc_wait(self->proc, 5000);
    qt_proc_destroy(&self->proc);
}

int qt_arbiter_restart(qt_arbiter_t *self)
{
    qt_arbiter_kill(self, SIGKILL);
    return arbiter_spawn(self);
}

void qt_arbiter_destroy(qt_arbiter_t **self_p)
{
    qt_arbiter_t *self = *self_p;
    if (!self)
        return;
    if (self->proc) {
        qt_proc_kill(self->proc, SIGTERM);
        qt_proc_wait(self->proc, 5000);
        qt_proc_destroy(&self->proc);
    }
    for (char **e = self->env; e && *e; e++)
        free(*e);
    free(self->env);
    for (char **e = self->args; e && *e; e++)
        free(*e);
    free(self->args);
    free(self->http);
    free(self->root);
    free(self->socket_dir);
    free(self->state_dir);
    free(self->config_path);
    free(self);
    *self_p = NULL;
}

int qt_ctl(const qt_arbiter_t *arb, char **out, char **err, ...)
{
    const char *argv[64];
    size_t n = 0;
    char *bin = qt_build_path("qgpuctl");
    argv[n++] = bin;
    argv[n++] = "--socket-dir";
    argv[n++] = arb->socket_dir;
    va_list ap;
    va_start(ap, err);
    const char *arg;
    while ((arg = va_arg(ap, const char *)) && n < 63)
        argv[n++] = arg;
    va_end(ap);
    argv[n] = NULL;
    int status = qt_run(argv, NULL, 10000, out, err);
    free(bin);
    return status;
}
