/* init.c - reads the environment at load time, joins the vGPU on first use, and starts a
 * fork child over.
 * Threads: the constructor runs before main(); qs_init_slow() may race in any threads and
 * init_lock serialises it; the fork handlers run in the forking thread. */
#include "shim/init.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim/agent.h"
#include "shim/log.h"
#include "shim/mem.h"
#include "shim/uuid.h"

/* Copies the environment variable name into buf (cap bytes); returns false when unset or
 * empty, or too long (then buf is emptied and the caller treats it as missing). */
static bool getenv_copy(const char *name, char *buf, size_t cap)
{
    const char *v = getenv(name);
    buf[0] = '\0';
    if (!v || !*v)
        return false;
    if (strlen(v) >= cap) {
        qs_log_once(&qs_g.logged.bad_env, "%s is too long (over %zu bytes): ignored", name,
                    cap - 1);
        return false;
    }
    memcpy(buf, v, strlen(v) + 1);
    return true;
}

static void before_fork(void)
{
    /* No initialisation, and no table update, may be half done in the child. */
    pthread_mutex_lock(&qs_g.init_lock);
    qs_mem_before_fork();
}

static void after_fork_parent(void)
{
    qs_mem_after_fork_parent();
    pthread_mutex_unlock(&qs_g.init_lock);
}

/* Only the forking thread exists in the child: the agent thread is gone, and any mutex
 * another thread held is held forever. The child forgets its parent's membership (its
 * memory is the parent's) and joins the vGPU as a process of its own on first use. */
static void after_fork_child(void)
{
    pthread_mutex_init(&qs_g.init_lock, NULL);
    pthread_mutex_init(&qs_g.dev_lock, NULL);
    if (!qs_g.managed)
        return;
    qs_agent_forget_after_fork();
    qs_mem_reset_after_fork();
    atomic_store_explicit(&qs_g.inited, 0, memory_order_relaxed);
}

__attribute__((constructor)) static void load_environment(void)
{
    qs_g.managed = getenv_copy("QVGPU_VGPU", qs_g.vgpu, sizeof qs_g.vgpu);
    if (!qs_g.managed)
        return;
    if (!getenv_copy("QVGPU_SECRET", qs_g.secret, sizeof qs_g.secret))
        qs_log_once(&qs_g.logged.bad_env,
                    "QVGPU_VGPU is set but QVGPU_SECRET is not: the "
                    "arbiter will refuse this process (run it with `qgpuctl run`)");
    if (!getenv_copy("QVGPU_SOCKET_DIR", qs_g.socket_dir, sizeof qs_g.socket_dir))
        snprintf(qs_g.socket_dir, sizeof qs_g.socket_dir, "/run/qvgpu");
    qs_uuid_from_visible(getenv("CUDA_VISIBLE_DEVICES"), qs_g.env_gpu, sizeof qs_g.env_gpu);
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* How long the first CUDA or NVML call waits for the arbiter's hello reply. The arbiter
 * is on this host and answers in about a millisecond; when it is down, the agent fails
 * fast (no socket, or refused), so this bound is met only by a hung arbiter. */
#define HELLO_WAIT_MS 3000

void qs_init_slow(void)
{
    int saved = errno; /* thread creation and dlopen may set it */
    pthread_mutex_lock(&qs_g.init_lock);
    if (!atomic_load_explicit(&qs_g.inited, memory_order_relaxed)) {
        if (qs_g.managed) {
            qs_mem_init();
            if (qs_agent_start() == 0)
                qs_agent_wait_hello(HELLO_WAIT_MS);
        }
        atomic_store_explicit(&qs_g.inited, 1, memory_order_release);
    }
    pthread_mutex_unlock(&qs_g.init_lock);
    errno = saved;
}
