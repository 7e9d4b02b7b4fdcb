/* slurm_support.c - a private Slurm cluster on localhost for the plugin's tests.
 * Single-threaded; atexit stops a cluster a failed test left running. */
#include "tests/slurm_support.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

struct cluster {
    char *dir;             /* owned: the cluster's directory (the harness removes it) */
    char *conf_env;        /* owned: "SLURM_CONF=<dir>/slurm.conf" */
    char *state_dir;       /* owned: the plugin's state_dir */
    char *tenant_dir;      /* owned: the arbiter's --tenant-dir, the plugin's tenant_dir */
    qt_arbiter_t *arbiter; /* owned */
    qt_proc_t *munged;     /* owned */
    qt_proc_t *slurmctld;  /* owned */
    qt_proc_t *slurmd;     /* owned */
};

/* The cluster atexit must stop (a test that failed an assertion never called stop). */
static cluster_t *live;

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_geq(fputs(text, f), 0);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(chmod(path, mode), 0);
}

static bool executable(const char *path)
{
    return access(path, X_OK) == 0;
}

bool cluster_available(void)
{
    char *plugin = qt_build_path("spank_qvgpu.so");
    bool ok = access(plugin, R_OK) == 0 && executable("/usr/sbin/slurmctld") &&
              executable("/usr/sbin/slurmd") && executable("/usr/sbin/munged") &&
              executable("/usr/bin/srun");
    free(plugin);
    return ok;
}

/* A TCP port on 127.0.0.1 that nobody listens on now (the kernel's choice). */
static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
                  getsockname(s, (struct sockaddr *)&a, &len) == 0,
              "cannot find a free port: %s", strerror(errno));
    close(s);
    return ntohs(a.sin_port);
}

/* Does host resolve to loopback addresses only? Then the daemons can bind to it alone. */
static bool loopback_only(const char *host)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *r;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return false;
    bool ok = true;
    for (r = res; r; r = r->ai_next) {
        if (r->ai_family == AF_INET)
            ok &= (ntohl(((struct sockaddr_in *)r->ai_addr)->sin_addr.s_addr) >> 24) == 127;
        else if (r->ai_family == AF_INET6)
            ok &= IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)r->ai_addr)->sin6_addr);
    }
    freeaddrinfo(res);
    return ok;
}

static char *tail(const char *path, size_t bytes)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return qt_strf("(no %s)\n", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)bytes ? size - (long)bytes : 0;
    fseek(f, from, SEEK_SET);
    char *buf = calloc(1, bytes + 1);
    size_t n = buf ? fread(buf, 1, bytes, f) : 0;
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

char *cluster_logs(const cluster_t *self)
{
    char *a = qt_strf("%s/slurmctld.log", self->dir), *b = qt_strf("%s/slurmd.log", self->dir);
    char *ta = tail(a, 3000), *tb = tail(b, 3000);
    char *out = qt_strf("--- slurmctld.log (end)\n%s\n--- slurmd.log (end)\n%s\n", ta, tb);
    free(a);
    free(b);
    free(ta);
    free(tb);
    return out;
}

/* Polls until path exists (true) or timeout_ms pass. */
static bool wait_path(const char *path, int timeout_ms)
{
    for (int t = 0; t < timeout_ms; t += 20) {
        if (access(path, F_OK) == 0)
            return true;
        qt_sleep_ms(20);
    }
    return false;
}

static const char *const daemon_env[] = {"LD_PRELOAD", "LD_LIBRARY_PATH", NULL};

/* Starts a daemon that dies with this process even when no atexit runs (the test killed by
 * a timeout): through setpriv --pdeathsig KILL where util-linux has it. */
static qt_proc_t *spawn_daemon(const char *const argv[])
{
    const char *with[16] = {"/usr/bin/setpriv", "--pdeathsig", "KILL"};
    if (access(with[0], X_OK) != 0)
        return qt_spawn(argv, daemon_env);
    size_t n = 3;
    for (size_t i = 0; argv[i] && n < 15; i++)
        with[n++] = argv[i];
    with[n] = NULL;
    return qt_spawn(with, daemon_env);
}

static void start_munged(cluster_t *c)
{
    char *mdir = qt_strf("%s/munge", c->dir);
    cr_assert_eq(mkdir(mdir, 0755), 0, "%s: %s", mdir, strerror(errno));
    char *key = qt_strf("%s/key", mdir), *sock = qt_strf("%s/sock", mdir);
    char *pid = qt_strf("%s/pid", mdir), *log = qt_strf("%s/log", mdir);
    char *seed = qt_strf("%s/seed", mdir);
    unsigned char bytes[1024];
    FILE *r = fopen("/dev/urandom", "r");
    cr_assert(r && fread(bytes, 1, sizeof bytes, r) == sizeof bytes);
    fclose(r);
    FILE *k = fopen(key, "w");
    cr_assert(k && fwrite(bytes, 1, sizeof bytes, k) == sizeof bytes && fclose(k) == 0);
    cr_assert_eq(chmod(key, 0400), 0);
    char *a_key = qt_strf("--key-file=%s", key), *a_sock = qt_strf("--socket=%s", sock);
    char *a_pid = qt_strf("--pid-file=%s", pid), *a_log = qt_strf("--log-file=%s", log);
    char *a_seed = qt_strf("--seed-file=%s", seed);
    const char *argv[] = {
        "/usr/sbin/munged", "-F", "--num-threads=4", a_key, a_sock, a_pid, a_log, a_seed, NULL};
    c->munged = spawn_daemon(argv);
    cr_assert_not_null(c->munged);
    cr_assert(wait_path(sock, 10000), "munged did not start: %s", qt_proc_stderr(c->munged));
    free(mdir), free(key), free(sock), free(pid), free(log), free(seed);
    free(a_key), free(a_sock), free(a_pid), free(a_log), free(a_seed);
}

static void write_configs(cluster_t *c, int gpus, const char *plugin_args)
{
    char host[256];
    cr_assert_eq(gethostname(host, sizeof host), 0);
    host[strcspn(host, ".")] = '\0';
    const char *d = c->dir;
    int ctld_port = free_port(), slurmd_port = free_port();
    while (slurmd_port == ctld_port)
        slurmd_port = free_port();
    char *gres = gpus ? qt_strf("GresTypes=gpu\n") : qt_strf("%s", "");
    char *node_gres = gpus ? qt_strf(" Gres=gpu:%d", gpus) : qt_strf("%s", "");
    char *conf =
        qt_strf("ClusterName=qvtest\n"
                "SlurmctldHost=%s(127.0.0.1)\n"
                "SlurmctldPort=%d\n"
                "SlurmdPort=%d\n"
                "SlurmUser=root\n"
                "SlurmdUser=root\n"
                "AuthType=auth/munge\n"
                "CredType=cred/munge\n"
                "AuthInfo=socket=%s/munge/sock\n"
                "StateSaveLocation=%s/state\n"
                "SlurmdSpoolDir=%s/spool\n"
                "SlurmctldPidFile=%s/slurmctld.pid\n"
                "SlurmdPidFile=%s/slurmd.pid\n"
                "SlurmctldLogFile=%s/slurmctld.log\n"
                "SlurmdLogFile=%s/slurmd.log\n"
                "SlurmctldDebug=verbose\n"
                "SlurmdDebug=debug\n"
                "%s"
                "ProctrackType=proctrack/linuxproc\n"
                "TaskPlugin=task/none\n"
                "JobAcctGatherType=jobacct_gather/none\n"
                "AccountingStorageType=accounting_storage/none\n"
                "JobCompType=jobcomp/none\n"
                "MpiDefault=none\n"
                "SwitchType=switch/none\n"
                "MailProg=/bin/true\n"
                "SchedulerType=sched/backfill\n"
                "SelectType=select/cons_tres\n"
                "SelectTypeParameters=CR_Core\n"
                "PrologFlags=Alloc\n"
                "PlugStackConfig=%s/plugstack.conf\n"
                "SlurmdParameters=config_overrides\n"
                "ReturnToService=2\n"
                "KillWait=2\n"
                "MinJobAge=300\n"
                "%s"
                "NodeName=%s NodeAddr=127.0.0.1 CPUs=4 RealMemory=4000%s State=UNKNOWN\n"
                "PartitionName=main Nodes=%s Default=YES MaxTime=INFINITE State=UP\n",
                host, ctld_port, slurmd_port, d, d, d, d, d, d, d,
                loopback_only(host) ? "CommunicationParameters=NoInAddrAny,NoCtldInAddrAny\n" : "",
                d, gres, host, node_gres, host);
    char *path = qt_strf("%s/slurm.conf", d);
    write_file(path, conf, 0644);
    free(path);
    free(conf);
    free(gres);
    free(node_gres);

    if (gpus) {
        char *dev = qt_strf("%s/dev", d);
        cr_assert_eq(mkdir(dev, 0755), 0);
        for (int i = 0; i < gpus; i++) {
            char *node = qt_strf("%s/nvidia%d", dev, i);
            cr_assert_eq(mknod(node, S_IFCHR | 0600, makedev(195, i)), 0, "mknod %s: %s", node,
                         strerror(errno));
            free(node);
        }
        char *text = qt_strf("NodeName=%s Name=gpu File=%s/nvidia[0-%d]\n", host, dev, gpus - 1);
        path = qt_strf("%s/gres.conf", d);
        write_file(path, text, 0644);
        free(path);
        free(text);
        free(dev);
    }

    char *plugin = qt_build_path("spank_qvgpu.so"), *ctl = qt_build_path("qgpuctl");
    char *stack = qt_strf("required %s socket_dir=%s tenant_dir=%s qgpuctl=%s state_dir=%s "
                          "timeout=10 %s\n",
                          plugin, qt_arbiter_socket_dir(c->arbiter), c->tenant_dir, ctl,
                          c->state_dir, plugin_args ? plugin_args : "");
    path = qt_strf("%s/plugstack.conf", d);
    write_file(path, stack, 0644);
    free(path);
    free(stack);
    free(plugin);
    free(ctl);
}

static void stop(cluster_t *c);

static void stop_at_exit(void)
{
    if (live) {
        cluster_t *c = live;
        cluster_stop(&c);
    }
}

cluster_t *cluster_start(int gpus, const char *plugin_args)
{
    cr_assert(gpus >= 0 && gpus <= 4);
    cr_assert_null(live, "one cluster per test");
    cluster_t *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    c->dir = qt_tmpdir();
    /* munged insists that everyone may reach its socket's directory */
    cr_assert_eq(chmod(c->dir, 0755), 0);
    c->conf_env = qt_strf("SLURM_CONF=%s/slurm.conf", c->dir);
    c->state_dir = qt_strf("%s/qvgpu-slurm", c->dir);
    c->tenant_dir = qt_strf("%s/tenant", c->dir);
    static bool registered;
    if (!registered) {
        atexit(stop_at_exit);
        registered = true;
    }
    live = c;
    /* what slurmd daemonises (slurmstepd) comes back to this process when its parent goes */
    cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0, "%s", strerror(errno));

    char sim[128] = "";
    for (int i = 0; i < (gpus ? gpus : 1); i++)
        snprintf(sim + strlen(sim), sizeof sim - strlen(sim), "%sNVIDIA GeForce GTX 1080:8GiB:20",
                 i ? "," : "");
    qt_sim_private(sim);
    /* tenant.sock alone in a directory of its own, as a cluster would run it; its CDI
     * specs in a private dir, not the host's /var/run/cdi (test_containers uses that) */
    char *cdi = qt_tmpdir();
    const char *args[] = {"--tenant-dir", c->tenant_dir, "--cdi-dir", cdi, NULL};
    c->arbiter = qt_arbiter_start_args(NULL, NULL, args);
    free(cdi);
    cr_assert_not_null(c->arbiter, "qarbiter did not start");

    start_munged(c);
    write_configs(c, gpus, plugin_args);
    char *conf = qt_strf("%s/slurm.conf", c->dir);
    const char *ctld[] = {"/usr/sbin/slurmctld", "-D", "-i", "-f", conf, NULL};
    const char *slurmd[] = {"/usr/sbin/slurmd", "-D", "-f", conf, NULL};
    c->slurmctld = spawn_daemon(ctld);
    c->slurmd = spawn_daemon(slurmd);
    free(conf);
    cr_assert(c->slurmctld && c->slurmd);
    char *state = NULL;
    for (int t = 0; t < 30000; t += 200) {
        free(state);
        state = cluster_node_state(c);
        if (strcmp(state, "idle") == 0)
            break;
        qt_sleep_ms(200);
    }
    if (strcmp(state, "idle") != 0) {
        char *logs = cluster_logs(c);
        cr_assert_fail("the Slurm node is '%s', not idle, after 30 s\n%s", state, logs);
    }
    free(state);
    return c;
}

qt_arbiter_t *cluster_arbiter(cluster_t *self)
{
    return self->arbiter;
}

const char *cluster_state_dir(const cluster_t *self)
{
    return self->state_dir;
}

const char *cluster_tenant_dir(const cluster_t *self)
{
    return self->tenant_dir;
}

char *cluster_path(const cluster_t *self, const char *name)
{
    char *p = qt_strf("%s/%s", self->dir, name);
    cr_assert_eq(mkdir(p, 0777), 0, "%s: %s", p, strerror(errno));
    chmod(p, 0777);
    return p;
}

/* env plus SLURM_CONF, NULL-terminated; the strings are borrowed. Caller frees the array. */
static const char **with_conf(const cluster_t *self, const char *const env[])
{
    size_t n = 0;
    while (env && env[n])
        n++;
    const char **all = calloc(n + 2, sizeof *all);
    cr_assert_not_null(all);
    for (size_t i = 0; i < n; i++)
        all[i] = env[i];
    all[n] = self->conf_env;
    return all;
}

qt_proc_t *cluster_spawn(cluster_t *self, const char *const argv[], const char *const env[])
{
    const char **all = with_conf(self, env);
    qt_proc_t *p = qt_spawn(argv, all);
    free(all);
    cr_assert_not_null(p, "cannot start %s", argv[0]);
    return p;
}

int cluster_run(cluster_t *self, const char *const argv[], const char *const env[], int timeout_ms,
                char **out, char **err)
{
    const char **all = with_conf(self, env);
    int rc = qt_run(argv, all, timeout_ms, out, err);
    free(all);
    return rc;
}

/* The first line of a command's stdout, or "" when it failed. Caller frees. */
static char *first_line(cluster_t *self, const char *const argv[])
{
    char *out = NULL;
    int rc = cluster_run(self, argv, NULL, 10000, &out, NULL);
    if (rc != 0 || !out) {
        free(out);
        return strdup("");
    }
    out[strcspn(out, "\n")] = '\0';
    return out;
}

char *cluster_node_state(cluster_t *self)
{
    const char *argv[] = {"sinfo", "-h", "-N", "-o", "%T", NULL};
    return first_line(self, argv);
}

char *cluster_job_state(cluster_t *self, unsigned job)
{
    char id[16];
    snprintf(id, sizeof id, "%u", job);
    const char *argv[] = {"squeue", "-h", "-j", id, "-t", "all", "-o", "%T", NULL};
    char *s = first_line(self, argv);
    if (!*s) {
        free(s);
        return NULL;
    }
    return s;
}

bool cluster_wait_idle(cluster_t *self, int timeout_ms)
{
    const char *argv[] = {"squeue", "-h", "-o", "%A", NULL};
    for (int t = 0;; t += 100) {
        char *out = NULL;
        int rc = cluster_run(self, argv, NULL, 10000, &out, NULL);
        bool none = rc == 0 && out && !*out;
        free(out);
        if (none)
            return true;
        if (t >= timeout_ms)
            return false;
        qt_sleep_ms(100);
    }
}

bool cluster_vgpu(cluster_t *self, const char *vm, char *id, int *gpu)
{
    char *out = NULL, *err = NULL;
    int rc = qt_ctl(self->arbiter, &out, &err, "--json", "list", NULL);
    cr_assert_eq(rc, 0, "qgpuctl list: %s", err);
    json_error_t je;
    json_t *doc = json_loads(out, 0, &je), *v;
    cr_assert_not_null(doc, "%s", out);
    size_t i;
    bool found = false;
    json_array_foreach(json_object_get(doc, "vgpus"), i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "vm")), vm) != 0)
            continue;
        if (id)
            snprintf(id, 32, "%s", json_string_value(json_object_get(v, "id")));
        if (gpu)
            *gpu = (int)json_integer_value(json_object_get(v, "gpu"));
        found = true;
    }
    json_decref(doc);
    free(out);
    free(err);
    return found;
}

bool cluster_wait_vgpu(cluster_t *self, const char *vm, bool present, int timeout_ms)
{
    for (int t = 0;; t += 100) {
        if (cluster_vgpu(self, vm, NULL, NULL) == present)
            return true;
        if (t >= timeout_ms)
            return false;
        qt_sleep_ms(100);
    }
}

/* Children of this process that the harness did not start: what slurmd daemonised. */
static size_t strays(pid_t *out, size_t max, const cluster_t *c)
{
    DIR *d = opendir("/proc");
    size_t n = 0;
    struct dirent *e;
    pid_t me = getpid();
    while (d && (e = readdir(d)) && n < max) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* pid (comm) state ppid ...: comm may hold spaces, so start after the last ')' */
        char *rp = strrchr(buf, ')');
        int ppid = 0;
        if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1 || ppid != me)
            continue;
        bool known = false;
        const qt_proc_t *mine[] = {c->munged, c->slurmctld, c->slurmd,
                                   c->arbiter ? qt_arbiter_proc(c->arbiter) : NULL};
        for (size_t k = 0; k < 4; k++)
            known |= mine[k] && qt_proc_pid(mine[k]) == pid;
        if (!known)
            out[n++] = pid;
    }
    if (d)
        closedir(d);
    return n;
}

static void stop_daemon(qt_proc_t **p)
{
    if (!*p)
        return;
    qt_proc_kill(*p, SIGTERM);
    if (qt_proc_wait(*p, 5000) == -ETIMEDOUT)
        qt_proc_wait(*p, 1000);
    qt_proc_destroy(p);
}

static void stop(cluster_t *c)
{
    /* Jobs first, while slurmd and the arbiter still run their epilogs. */
    if (c->slurmctld && c->slurmd) {
        const char *cancel[] = {"scancel", "--me", NULL};
        cluster_run(c, cancel, NULL, 10000, NULL, NULL);
        cluster_wait_idle(c, 10000);
    }
    stop_daemon(&c->slurmd);
    stop_daemon(&c->slurmctld);
    /* Whatever is left (a slurmstepd, a task) by pid, until nothing comes back to us. */
    for (int round = 0; round < 100; round++) {
        pid_t pids[64];
        size_t n = strays(pids, 64, c);
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
    }
    stop_daemon(&c->munged);
    qt_arbiter_destroy(&c->arbiter);
}

void cluster_stop(cluster_t **self_p)
{
    cluster_t *c = *self_p;
    if (!c)
        return;
    *self_p = NULL;
    if (live == c)
        live = NULL;
    stop(c);
    free(c->conf_env);
    free(c->state_dir);
    free(c->tenant_dir);
    free(c->dir);
    free(c);
}
