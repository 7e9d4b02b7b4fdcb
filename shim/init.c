/* init.c - reads the environment once (at the first hook or at load time, whichever
 * comes first), joins the vGPU on first use, and starts a fork child over: its handlers
 * call each module's own fork functions in turn.
 * Threads: qs_env_decide() may race in any threads (a compare-and-swap elects the one
 * that reads, the others wait for it); the constructor runs before main(); qs_init_slow()
 * may race in any threads and init0.lock serialises it; the fork handlers run in the
 * forking thread. */
#include "shim/init.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proto/container.h"

#include "shim/agent.h"
#include "shim/device.h"
#include "shim/drain.h"
#include "shim/gate.h"
#include "shim/log.h"
#include "shim/mem.h"
#include "shim/nvml.h"
#include "shim/pools.h"
#include "shim/uuid.h"
#include "shim/vmm.h"

extern char **environ;

#define ID_LEN 64
#define SECRET_LEN 256
#define PATH_LEN 4096

atomic_int qs_env_state;
atomic_int qs_inited;

/* What this file keeps. */
static struct {
    /* the environment: read_environment() writes it once, before qs_env_state says so */
    int problems;              /* ENVP_* bits found while reading, logged by after_decision() */
    char vgpu[ID_LEN];         /* QVGPU_VGPU */
    char secret[SECRET_LEN];   /* QVGPU_SECRET */
    char socket_dir[PATH_LEN]; /* QVGPU_SOCKET_DIR, default /run/qvgpu */
    char gpu[QS_UUID_LEN];     /* CUDA_VISIBLE_DEVICES at load time: the GPU's UUID */
    pthread_once_t once;       /* logs problems and installs the fork handlers */
    pthread_mutex_t lock;      /* serialises qs_init_slow(); taken across fork */
    atomic_int logged_env;     /* the environment's problems were said */
} init0 = {.once = PTHREAD_ONCE_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

/* init0.problems: what qs_init() will say about the environment, once. */
enum { ENVP_TOO_LONG = 1, ENVP_NO_SECRET = 2 };

const char *qs_env_vgpu(void)
{
    return init0.vgpu;
}

const char *qs_env_secret(void)
{
    return init0.secret;
}

const char *qs_env_socket_dir(void)
{
    return init0.socket_dir;
}

const char *qs_env_gpu(void)
{
    return init0.gpu;
}

/* Copies the value of environment variable name into buf (cap bytes); returns false when
 * unset or empty, or too long (noted in env_problems; the caller treats it as missing). */
QS_EARLY static bool env_copy(const char *name, char *buf, size_t cap)
{
    const char *v = qs_env_value(environ, name);
    buf[0] = '\0';
    if (!v || !*v)
        return false;
    if (!qs_copy_early(buf, cap, v, (size_t)-1)) {
        init0.problems |= ENVP_TOO_LONG;
        return false;
    }
    return true;
}

/* The value of NAME= on a line of text (n bytes), copied into buf (cap bytes); false
 * when absent or too long. */
QS_EARLY static bool line_copy(const char *text, size_t n, const char *name, char *buf,
                               size_t cap)
{
    buf[0] = '\0';
    for (size_t i = 0; i < n;) {
        const char *line = text + i;
        size_t len = 0;
        while (i + len < n && line[len] != '\n')
            len++;
        i += len + 1;
        size_t k = 0;
        while (name[k] && k < len && line[k] == name[k])
            k++;
        if (!name[k] && k < len && line[k] == '=')
            return qs_copy_early(buf, cap, line + k + 1, len - k - 1) && buf[0];
    }
    return false;
}

/* The vGPU of a container whose process lost its environment (env -i, su, sshd): the
 * credentials file its CDI spec mounts read-only (proto/container.h). Raw system calls,
 * as nothing here may call a libc function a sanitizer intercepts (early.h); the
 * application's errno is kept. Returns whether the file names a vGPU. */
QS_EARLY static bool read_vgpu_file(void)
{
    char text[1024];
    int saved = errno;
    long fd = syscall(SYS_openat, AT_FDCWD, QP_CTR_VGPU_FILE, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    long n = fd < 0 ? -1 : syscall(SYS_read, fd, text, sizeof text);
    if (fd >= 0)
        syscall(SYS_close, fd);
    errno = saved;
    if (n <= 0 || !line_copy(text, (size_t)n, "QVGPU_VGPU", init0.vgpu, sizeof init0.vgpu))
        return false;
    if (!line_copy(text, (size_t)n, "QVGPU_SECRET", init0.secret, sizeof init0.secret))
        init0.problems |= ENVP_NO_SECRET;
    char visible[QS_UUID_LEN];
    if (line_copy(text, (size_t)n, "CUDA_VISIBLE_DEVICES", visible, sizeof visible))
        qs_uuid_from_visible(visible, init0.gpu, sizeof init0.gpu);
    if (!env_copy("QVGPU_SOCKET_DIR", init0.socket_dir, sizeof init0.socket_dir))
        qs_copy_early(init0.socket_dir, sizeof init0.socket_dir, QP_CTR_SOCKET_DIR, (size_t)-1);
    return true;
}

/* The environment's part of init0. Runs in one thread, once. */
QS_EARLY static int read_environment(void)
{
    if (!env_copy("QVGPU_VGPU", init0.vgpu, sizeof init0.vgpu))
        return read_vgpu_file() ? QS_ENV_MANAGED : QS_ENV_PASS;
    if (!env_copy("QVGPU_SECRET", init0.secret, sizeof init0.secret))
        init0.problems |= ENVP_NO_SECRET;
    if (!env_copy("QVGPU_SOCKET_DIR", init0.socket_dir, sizeof init0.socket_dir))
        qs_copy_early(init0.socket_dir, sizeof init0.socket_dir, QP_CTR_SOCKET_DIR, (size_t)-1);
    qs_uuid_from_visible(qs_env_value(environ, "CUDA_VISIBLE_DEVICES"), init0.gpu,
                         sizeof init0.gpu);
    return QS_ENV_MANAGED;
}

QS_EARLY int qs_env_decide(void)
{
    /* Before libc sets environ (a sanitizer runtime starting from an executable's
     * .preinit_array looks functions up then), nothing can be known: pass through for
     * now, and decide on a later call. */
    if (!environ)
        return QS_ENV_PASS;
    int st = QS_ENV_UNREAD;
    if (atomic_compare_exchange_strong_explicit(&qs_env_state, &st, QS_ENV_READING,
                                                memory_order_acquire, memory_order_acquire)) {
        st = read_environment();
        /* release: the fields read are published with the decision */
        atomic_store_explicit(&qs_env_state, st, memory_order_release);
        return st;
    }
    /* Another thread is scanning environ: a few microseconds. No lock, so that this works
     * before anything (a sanitizer runtime, libc's locks) is ready. */
    while ((st = atomic_load_explicit(&qs_env_state, memory_order_acquire)) == QS_ENV_READING)
        sched_yield();
    return st;
}

static void before_fork(void)
{
    /* No initialisation, and no table update, may be half done in the child. */
    pthread_mutex_lock(&init0.lock);
    qs_mem_before_fork();
    qs_vmm_before_fork();
}

static void after_fork_parent(void)
{
    qs_vmm_after_fork_parent();
    qs_mem_after_fork_parent();
    pthread_mutex_unlock(&init0.lock);
}

/* Only the forking thread exists in the child: the agent and drainer threads are gone,
 * and any mutex another thread held is held forever. The child forgets its parent's
 * membership (its memory is the parent's) and joins the vGPU as a process of its own on
 * first use. Each module resets what it owns. */
static void after_fork_child(void)
{
    pthread_mutex_init(&init0.lock, NULL);
    qs_device_reset_after_fork();
    qs_nvml_reset_after_fork();
    if (!qs_managed())
        return;
    qs_agent_forget_after_fork();
    qs_gate_reset_after_fork(); /* no lease: the parent's is the parent's */
    qs_drain_reset_after_fork();
    qs_mem_reset_after_fork();
    qs_pools_reset_after_fork();
    qs_vmm_reset_after_fork();
    atomic_store_explicit(&qs_inited, 0, memory_order_relaxed);
}

/* What deciding could not do, since it may run before libc is usable: say what was
 * wrong with the environment, and install the fork handlers. Once per process. */
static void after_decision(void)
{
    if (!qs_managed())
        return;
    if (init0.problems & ENVP_TOO_LONG)
        qs_log_once(&init0.logged_env,
                    "QVGPU_SECRET or QVGPU_SOCKET_DIR is too long (over %zu or %zu bytes): "
                    "ignored",
                    sizeof init0.secret - 1, sizeof init0.socket_dir - 1);
    if (init0.problems & ENVP_NO_SECRET)
        qs_log_once(&init0.logged_env,
                    "QVGPU_VGPU is set but QVGPU_SECRET is not: the "
                    "arbiter will refuse this process (run it with `qgpuctl run`)");
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* Decides now, if no hook did (another library's constructor may already have). */
__attribute__((constructor)) static void load_environment(void)
{
    pthread_once(&init0.once, after_decision);
}

/* How long the first CUDA or NVML call waits for the arbiter's hello reply. The arbiter
 * is on this host and answers in about a millisecond; when it is down, the agent fails
 * fast (no socket, or refused), so this bound is met only by a hung arbiter. */
#define HELLO_WAIT_MS 3000

void qs_init_slow(void)
{
    int saved = errno; /* thread creation and dlopen may set it */
    /* A hook reached before our constructor (from another library's) joins here: the
     * fork handlers must be in place before the state they guard exists. */
    pthread_once(&init0.once, after_decision);
    /* Logging and the hello wait are cancellation points: a thread cancelled in its
     * first CUDA call must not leave init0.lock held. */
    int cancel;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel);
    pthread_mutex_lock(&init0.lock);
    if (!atomic_load_explicit(&qs_inited, memory_order_relaxed)) {
        if (qs_managed()) {
            qs_mem_init();
            if (qs_agent_start() == 0)
                qs_agent_wait_hello(HELLO_WAIT_MS);
        }
        atomic_store_explicit(&qs_inited, 1, memory_order_release);
    }
    pthread_mutex_unlock(&init0.lock);
    pthread_setcancelstate(cancel, NULL);
    errno = saved;
}
