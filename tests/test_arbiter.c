/* test_arbiter.c - qarbiter as a daemon on the sim: discovery, start and stop, the lock,
 * socket modes, flags and config errors, persistence across kill -9, hostile input on a
 * real socket, and slow or dead clients. */
#include "proto/msg.h"
#include "proto/schema.h"
#include "tests/ctl_support.h"

#include <criterion/criterion.h>
#include <cuda.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

static char *path_in(const char *dir, const char *name)
{
    char *p;
    cr_assert(asprintf(&p, "%s/%s", dir, name) > 0);
    return p;
}

static bool exists(const char *dir, const char *name)
{
    char *p = path_in(dir, name);
    struct stat st;
    bool ok = stat(p, &st) == 0;
    free(p);
    return ok;
}

/* An arbiter that made one Q1 vGPU and was killed with -9 (into *arb); the path of that
 * vGPU's state file (caller frees). */
static char *killed_with_a_vgpu(qt_arbiter_t **arb)
{
    *arb = ctl_arbiter(NULL, NULL);
    qv_client_t *c = ctl_client(*arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "vm", "Q1", id, secret);
    qv_disconnect(&c);
    qt_arbiter_kill(*arb, SIGKILL);
    char *file;
    cr_assert(asprintf(&file, "%s/vgpus/%s.json", qt_arbiter_state_dir(*arb), id) > 0);
    return file;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(qa_daemon, reports_every_simulated_gpu)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    qv_gpu_list_t *l;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_gpus(c, &l, err), 0, "%s", err);
    cr_assert_eq(l->count, 3);
    const uint64_t mem[] = {8192, 8192, 4096};
    const unsigned sms[] = {20, 20, 10};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(l->gpus[i].index, (int)i);
        cr_assert_eq(l->gpus[i].memory_total_mb, mem[i]);
        cr_assert_eq(l->gpus[i].sms, sms[i]);
        cr_assert_eq(l->gpus[i].cuda_cores, sms[i] * 128, "CONTRACT: cores = SMs x 128");
        cr_assert_neq(l->gpus[i].uuid[0], '\0');
        cr_assert_eq(l->gpus[i].vgpus, 0);
    }
    cr_assert_str_eq(l->gpus[2].name, "NVIDIA GeForce GTX 1050");
    cr_assert_str_neq(l->gpus[0].uuid, l->gpus[1].uuid);
    cr_assert_float_eq(l->oversub_memory, 1.0, 1e-9);
    cr_assert_str_eq(l->placement, "spread");
    qv_gpu_list_free(&l);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qa_daemon, without_a_driver_it_says_so_in_one_line_and_exits_1)
{
    qt_sim_private(NULL);
    char *dir = qt_tmpdir();
    char *bin = qt_build_path("qarbiter");
    char *sock = path_in(dir, "sock"), *state = path_in(dir, "state");
    const char *argv[] = {bin, "--socket-dir", sock, "--state-dir", state, NULL};
    const char *env[] = {"LD_LIBRARY_PATH=/nonexistent", NULL};
    char *out, *err;
    int rc = qt_run(argv, env, 5000, &out, &err);
    if (strstr(err, "NVML") && !strstr(err, "no NVIDIA driver"))
        cr_skip_test("this machine has a system NVML: %s", err);
    cr_assert_eq(rc, 1, "%s", err);
    cr_assert(strstr(err, "qarbiter: no NVIDIA driver: cannot load libnvidia-ml.so.1"), "%s", err);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    cr_assert_not(exists(sock, "admin.sock"));
    free(out), free(err), free(bin), free(sock), free(state), free(dir);
}

Test(qa_daemon, a_second_arbiter_on_the_same_socket_dir_refuses)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    char *bin = qt_build_path("qarbiter");
    char *dir = qt_tmpdir();
    const char *argv[] = {bin, "--socket-dir", qt_arbiter_socket_dir(arb), "--state-dir", dir,
                          NULL};
    char *out, *err;
    cr_assert_eq(qt_run(argv, NULL, 5000, &out, &err), 1, "%s", err);
    char pid[32];
    snprintf(pid, sizeof pid, "(pid %d)", (int)qt_proc_pid(qt_arbiter_proc(arb)));
    cr_assert(strstr(err, "another qarbiter") && strstr(err, pid), "%s", err);
    cr_assert(strstr(err, "qarbiter.lock"), "%s", err);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    qv_client_t *c = ctl_client(arb); /* the first one still serves */
    qv_disconnect(&c);
    free(out), free(err), free(bin), free(dir);
    qt_arbiter_destroy(&arb);
}

Test(qa_daemon, sigterm_and_sigint_stop_it_cleanly_and_remove_its_sockets)
{
    int sigs[] = {SIGTERM, SIGINT};
    for (int i = 0; i < 2; i++) {
        qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
        const char *dir = qt_arbiter_socket_dir(arb);
        cr_assert(exists(dir, "admin.sock") && exists(dir, "tenant.sock"));
        qt_proc_t *p = qt_arbiter_proc(arb);
        qt_proc_kill(p, sigs[i]);
        cr_assert_eq(qt_proc_wait(p, 5000), 0, "exit status 0, no leak: %s", qt_proc_stderr(p));
        cr_assert_not(exists(dir, "admin.sock"));
        cr_assert_not(exists(dir, "tenant.sock"));
        cr_assert(strstr(qt_proc_stderr(p), "stopping"), "%s", qt_proc_stderr(p));
        qt_arbiter_destroy(&arb);
    }
}

Test(qa_daemon, admin_socket_is_the_administrators_and_tenant_socket_everyones)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL);
    struct stat st;
    char *admin = path_in(qt_arbiter_socket_dir(arb), "admin.sock");
    char *tenant = path_in(qt_arbiter_socket_dir(arb), "tenant.sock");
    cr_assert_eq(stat(admin, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(stat(tenant, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0666);
    free(admin), free(tenant);
    qt_arbiter_destroy(&arb);
}

/* Runs qarbiter with extra arguments on fresh dirs; returns its status, stderr in *err. */
static int run_arbiter(const char *extra[], char **err)
{
    char *bin = qt_build_path("qarbiter");
    char *dir = qt_tmpdir();
    char *sock = path_in(dir, "sock"), *state = path_in(dir, "state");
    const char *argv[16] = {bin, "--socket-dir", sock, "--state-dir", state};
    size_t n = 5;
    for (size_t i = 0; extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    char *out;
    int rc = qt_run(argv, NULL, 5000, &out, err);
    free(out), free(bin), free(sock), free(state), free(dir);
    return rc;
}

Test(qa_daemon, bad_flags_and_bad_config_exit_2_with_one_line)
{
    qt_sim_private(NULL);
    char *err;
    const char *bogus[] = {"--bogus", NULL};
    cr_assert_eq(run_arbiter(bogus, &err), 2);
    cr_assert(strstr(err, "unknown option '--bogus'"), "%s", err);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    free(err);
    const char *novalue[] = {"--config", NULL};
    cr_assert_eq(run_arbiter(novalue, &err), 2);
    cr_assert(strstr(err, "--config needs a value"), "%s", err);
    free(err);
    char *dir = qt_tmpdir();
    char *conf = path_in(dir, "bad.conf");
    FILE *f = fopen(conf, "w");
    fputs("[arbiter]\nplacement = everywhere\n", f);
    fclose(f);
    const char *badconf[] = {"--config", conf, NULL};
    cr_assert_eq(run_arbiter(badconf, &err), 2);
    cr_assert(strstr(err, "bad.conf:2: placement 'everywhere'"), "%s", err);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    free(err);
    const char *missing[] = {"--config", "/nonexistent.conf", NULL};
    cr_assert_eq(run_arbiter(missing, &err), 2);
    cr_assert(strstr(err, "/nonexistent.conf: cannot read"), "%s", err);
    free(err);
    /* regression: a directory was read as an empty file, /dev/zero for ever */
    const char *is_dir[] = {"--config", dir, NULL};
    cr_assert_eq(run_arbiter(is_dir, &err), 2);
    cr_assert(strstr(err, "not a regular file"), "%s", err);
    free(err);
    const char *zero[] = {"--config", "/dev/zero", NULL};
    cr_assert_eq(run_arbiter(zero, &err), 2);
    cr_assert(strstr(err, "/dev/zero: not a regular file"), "%s", err);
    cr_assert_eq(count_lines(err), 1, "%s", err);
    free(err), free(conf), free(dir);
}

static void create_custom(qv_client_t *c, const char *vm, uint64_t mb, unsigned share,
                          unsigned limit, int gpu, char id[QV_ID_LEN])
{
    qv_create_t req = {
        .vm = vm, .memory_mb = mb, .share = share, .has_limit = 1, .limit = limit, .gpu = gpu};
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_create(c, &req, &v, NULL, err), 0, "%s", err);
    memcpy(id, v.id, QV_ID_LEN);
}

Test(qa_daemon, every_vgpu_survives_kill_9_with_its_id_secret_and_limits)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    char ids[4][QV_ID_LEN], secret[QV_SECRET_LEN], err[QV_ERR_LEN];
    ctl_create(c, "vm-a", "Q2", ids[0], secret);
    ctl_create(c, "vm-b", "Q4", ids[1], secret);
    create_custom(c, "vm-c", 1536, 15, 30, 2, ids[2]);
    ctl_create(c, "vm-d", "Q1", ids[3], secret);
    qv_resize_t r = {.has_share = 1, .share = 25, .has_limit = 1, .limit = 0};
    cr_assert_eq(qv_resize(c, ids[0], &r, NULL, err), 0, "%s", err);
    cr_assert_eq(qv_destroy(c, ids[3], err), 0, "%s", err);
    qv_vgpu_list_t *before;
    cr_assert_eq(qv_list(c, &before, err), 0, "%s", err);
    qv_creds_t creds[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(qv_creds(c, ids[i], &creds[i], err), 0, "%s", err);
    qv_disconnect(&c);

    qt_arbiter_kill(arb, SIGKILL);
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    c = ctl_client(arb);
    qv_vgpu_list_t *after;
    cr_assert_eq(qv_list(c, &after, err), 0, "%s", err);
    cr_assert_eq(after->count, 3);
    for (size_t i = 0; i < 3; i++) {
        const qv_vgpu_t *a = &before->vgpus[i], *b = &after->vgpus[i];
        cr_assert_str_eq(a->id, b->id);
        cr_assert_str_eq(a->vm, b->vm);
        cr_assert_str_eq(a->profile, b->profile);
        cr_assert_eq(a->gpu, b->gpu);
        cr_assert_str_eq(a->gpu_uuid, b->gpu_uuid);
        cr_assert_eq(a->memory_mb, b->memory_mb);
        cr_assert_eq(a->share, b->share);
        cr_assert_eq(a->limit, b->limit);
        cr_assert_eq(a->created, b->created);
        qv_creds_t cr;
        cr_assert_eq(qv_creds(c, a->id, &cr, err), 0, "%s", err);
        cr_assert_str_eq(cr.secret, creds[i].secret);
    }
    cr_assert_eq(after->vgpus[0].share, 25);
    cr_assert_str_eq(after->vgpus[0].profile, "custom");
    cr_assert_eq(after->vgpus[2].gpu, 2);
    cr_assert_eq(after->vgpus[2].limit, 30);
    /* the old secret still opens a tenant session */
    ctl_tenant_t *t = ctl_tenant_new(arb, creds[1].id, creds[1].secret);
    cr_assert_eq(ctl_tenant_hello(t), 0);
    ctl_tenant_destroy(&t);
    /* and no id is ever handed out again, not even the destroyed one's */
    char fresh[QV_ID_LEN];
    ctl_create(c, "vm-e", "Q1", fresh, secret);
    for (int i = 0; i < 4; i++)
        cr_assert_str_neq(fresh, ids[i]);
    qv_vgpu_list_free(&before);
    qv_vgpu_list_free(&after);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

Test(qa_daemon, a_corrupt_state_file_stops_the_start_naming_it)
{
    qt_arbiter_t *arb;
    char *file = killed_with_a_vgpu(&arb);
    FILE *f = fopen(file, "w");
    /* Not what a power cut leaves: a record someone must look at. */
    fputs("{\"id\": \"vg-1\", \"garbled\" ]", f);
    fclose(f);
    char *bin = qt_build_path("qarbiter");
    const char *argv[] = {
        bin, "--socket-dir", qt_arbiter_socket_dir(arb), "--state-dir", qt_arbiter_state_dir(arb),
        NULL};
    char *out, *err;
    cr_assert_eq(qt_run(argv, NULL, 5000, &out, &err), 1, "%s", err);
    /* the log may have said what it found before; the reason is one last line */
    const char *last = strstr(err, "\nqarbiter: ");
    last = last ? last + 1 : err;
    cr_assert(strncmp(last, "qarbiter: ", 10) == 0, "%s", err);
    cr_assert(strstr(last, file) && strstr(last, "fix or remove"), "%s", err);
    cr_assert_eq(count_lines(last), 1, "%s", err);
    free(out), free(err), free(bin), free(file);
    qt_arbiter_destroy(&arb);
}

/* Runs qarbiter on arb's directories (arb stopped) with the given socket dir (NULL: arb's)
 * and returns its exit status, stderr in *err (caller frees); stops it if it started. */
static int start_on(qt_arbiter_t *arb, const char *socket_dir, char **err)
{
    char *bin = qt_build_path("qarbiter");
    const char *argv[] = {bin,
                          "--socket-dir",
                          socket_dir ? socket_dir : qt_arbiter_socket_dir(arb),
                          "--state-dir",
                          qt_arbiter_state_dir(arb),
                          NULL};
    char *out;
    int rc = qt_run(argv, NULL, 3000, &out, err);
    free(out), free(bin);
    return rc;
}

/* The one-line reason a failed start gave last. */
static const char *last_line(const char *err)
{
    const char *last = strstr(err, "\nqarbiter: ");
    return last ? last + 1 : err;
}

/* Regression (issue 8): an empty (power-cut) state file was skipped with a warning and
 * its vGPU lost; without an intact previous version the start now stops, naming it. */
Test(qa_daemon, a_state_file_a_power_cut_left_empty_stops_the_start_unless_its_previous_version_is_whole)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL);
    qv_client_t *c = ctl_client(arb);
    char ids[2][QV_ID_LEN], secret[QV_SECRET_LEN], err[QV_ERR_LEN];
    ctl_create(c, "vm-a", "Q1", ids[0], secret);
    ctl_create(c, "vm-b", "Q1", ids[1], secret);
    qt_sleep_ms(300); /* synced */
    qv_resize_t grow = {.has_share = 1, .share = 15};
    qv_vgpu_t v;
    cr_assert_eq(qv_resize(c, ids[0], &grow, &v, err), 0, "%s", err);
    qv_disconnect(&c);
    qt_arbiter_kill(arb, SIGKILL);
    /* Both files renamed in place, their data never written. */
    char *files[2];
    for (int i = 0; i < 2; i++) {
        cr_assert(asprintf(&files[i], "%s/vgpus/%s.json", qt_arbiter_state_dir(arb), ids[i]) > 0);
        fclose(fopen(files[i], "w"));
    }
    char *e;
    cr_assert_eq(start_on(arb, NULL, &e), 1, "%s", e);
    cr_assert(strstr(last_line(e), files[1]) && strstr(last_line(e), "is empty") &&
                  strstr(last_line(e), "no whole previous version"),
              "%s", e);
    cr_assert_eq(count_lines(last_line(e)), 1, "%s", e);
    free(e);
    /* the administrator forgets the newest one: the other comes back as before its resize */
    cr_assert_eq(unlink(files[1]), 0);
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    cr_assert(strstr(qt_proc_stderr(qt_arbiter_proc(arb)), "previous version is restored"), "%s",
              qt_proc_stderr(qt_arbiter_proc(arb)));
    c = ctl_client(arb);
    v = ctl_info(c, ids[0]);
    cr_assert_eq(v.share, 10, "the resize is lost, not the vGPU");
    char fresh[QV_ID_LEN];
    ctl_create(c, "vm-c", "Q1", fresh, secret);
    cr_assert_str_neq(fresh, ids[1], "the forgotten vGPU's id is not handed out again");
    qv_disconnect(&c);
    free(files[0]), free(files[1]);
    qt_arbiter_destroy(&arb);
}

/* Regression (issue 8): with meta.json removed, the id of a destroyed vGPU was handed out
 * again after a restart. */
Test(qa_daemon, a_lost_meta_file_stops_the_start_rather_than_hand_out_an_id_again)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL);
    qv_client_t *c = ctl_client(arb);
    char ids[2][QV_ID_LEN], secret[QV_SECRET_LEN], err[QV_ERR_LEN];
    ctl_create(c, "vm-a", "Q1", ids[0], secret);
    ctl_create(c, "vm-b", "Q1", ids[1], secret);
    cr_assert_eq(qv_destroy(c, ids[1], err), 0, "%s", err);
    qv_disconnect(&c);
    qt_arbiter_kill(arb, SIGKILL);
    char *meta;
    cr_assert(asprintf(&meta, "%s/meta.json", qt_arbiter_state_dir(arb)) > 0);
    cr_assert_eq(unlink(meta), 0);
    char *e;
    cr_assert_eq(start_on(arb, NULL, &e), 1, "%s", e);
    cr_assert(strstr(last_line(e), "meta.json is missing") && strstr(last_line(e), "next_id"),
              "%s", e);
    free(e);
    /* the administrator writes it as told */
    FILE *f = fopen(meta, "w");
    fprintf(f, "{\"version\":1,\"next_id\":%d}", atoi(ids[1] + 3) + 1);
    fclose(f);
    cr_assert_eq(qt_arbiter_restart(arb), 0);
    c = ctl_client(arb);
    char fresh[QV_ID_LEN];
    ctl_create(c, "vm-c", "Q1", fresh, secret);
    cr_assert_str_neq(fresh, ids[1], "the destroyed vGPU's id is not handed out again");
    qv_disconnect(&c);
    free(meta);
    qt_arbiter_destroy(&arb);
}

/* Regression (issue 8): a 976 GiB vGPU on an 8 GiB GPU, from an edited state file, was
 * served. */
Test(qa_daemon, a_state_file_larger_than_its_gpu_stops_the_start)
{
    qt_arbiter_t *arb;
    char *text, *file = killed_with_a_vgpu(&arb);
    FILE *f = fopen(file, "r");
    cr_assert_not_null(f);
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    char *at = strstr(buf, "\"memory_mb\":1024");
    cr_assert_not_null(at, "%s", buf);
    cr_assert(asprintf(&text, "%.*s\"memory_mb\":999424%s", (int)(at - buf), buf,
                       at + strlen("\"memory_mb\":1024")) > 0);
    f = fopen(file, "w");
    fputs(text, f);
    fclose(f);
    char *e;
    cr_assert_eq(start_on(arb, NULL, &e), 1, "%s", e);
    cr_assert(strstr(last_line(e), "999424 MiB, more than its GPU 0 has (8192 MiB)") &&
                  strstr(last_line(e), "fix or remove"),
              "%s", e);
    free(e), free(file), free(text);
    qt_arbiter_destroy(&arb);
}

/* Regression (issue 8): an arbiter of another socket dir on the same state dir started,
 * handed out vg-1 again and replaced the first one's vGPU and secret. */
Test(qa_daemon, a_second_arbiter_on_the_same_state_dir_refuses)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL);
    char *other = qt_tmpdir(), *e;
    cr_assert_eq(start_on(arb, other, &e), 1, "%s", e);
    char pid[32];
    snprintf(pid, sizeof pid, "(pid %d)", (int)qt_proc_pid(qt_arbiter_proc(arb)));
    cr_assert(strstr(e, "another qarbiter") && strstr(e, pid) &&
                  strstr(e, qt_arbiter_state_dir(arb)),
              "%s", e);
    cr_assert_not(exists(other, "admin.sock"));
    qv_client_t *c = ctl_client(arb); /* the first one still serves */
    qv_disconnect(&c);
    free(e), free(other);
    qt_arbiter_destroy(&arb);
}

/* Regression (issue 8): after kill -9 the dead arbiter's admin.sock stayed until the next
 * start bound a new one, so "admin.sock appears last" did not say ready; a start that
 * failed left it too. */
Test(qa_daemon, a_dead_arbiters_admin_sock_is_gone_as_soon_as_the_next_one_starts)
{
    qt_arbiter_t *arb;
    char *file = killed_with_a_vgpu(&arb);
    cr_assert(exists(qt_arbiter_socket_dir(arb), "admin.sock"), "kill -9 leaves it");
    FILE *f = fopen(file, "w");
    fputs("not json", f);
    fclose(f);
    char *e;
    cr_assert_eq(start_on(arb, NULL, &e), 1, "%s", e);
    cr_assert_not(exists(qt_arbiter_socket_dir(arb), "admin.sock"),
                  "a start that failed leaves no admin.sock to take for a ready arbiter");
    free(e), free(file);
    qt_arbiter_destroy(&arb);
}

/* Runs fn as uid/gid nobody in a child and returns its exit status (the point of the
 * attack tests is what an unprivileged user can do). */
static int as_nobody(int (*fn)(void *), void *arg)
{
    pid_t child = fork();
    if (child == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(99);
        _exit(fn(arg));
    }
    int st;
    waitpid(child, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

struct plant {
    const char *link;   /* where the symlink goes */
    const char *target; /* what it points at */
};

static int plant_symlink(void *arg)
{
    struct plant *p = arg;
    return symlink(p->target, p->link) == 0 ? 0 : 1;
}

/* Regression (issue 8): with a socket dir others could write, a user's symlink at
 * qarbiter.lock made the arbiter (root) truncate and overwrite its target; a state dir
 * others could write let a user plant a vGPU with a chosen secret and quota. */
Test(qa_daemon, dirs_others_can_write_and_planted_links_are_refused_and_nothing_is_overwritten)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to act as another user");
    qt_sim_private(NULL);
    char *root = qt_tmpdir();
    cr_assert_eq(chmod(root, 0755), 0);
    char *sock = path_in(root, "sock"), *state = path_in(root, "state");
    char *victim = path_in(root, "victim");
    cr_assert_eq(mkdir(sock, 0777), 0);
    cr_assert_eq(chmod(sock, 0777), 0);
    cr_assert_eq(mkdir(state, 0700), 0);
    FILE *f = fopen(victim, "w");
    fputs("precious\n", f);
    fclose(f);
    char *lock = path_in(sock, "qarbiter.lock");
    struct plant p = {lock, victim};
    cr_assert_eq(as_nobody(plant_symlink, &p), 0, "nobody can write the socket dir");
    char *bin = qt_build_path("qarbiter"), *out, *e;
    const char *argv[] = {bin, "--socket-dir", sock, "--state-dir", state, NULL};
    cr_assert_eq(qt_run(argv, NULL, 3000, &out, &e), 1, "%s", e);
    cr_assert(strstr(e, "socket dir") && strstr(e, "is writable by everyone (mode 0777)"), "%s",
              e);
    free(out), free(e);
    /* root tightens the dir but leaves the link: still not followed */
    cr_assert_eq(chmod(sock, 0755), 0);
    cr_assert_eq(qt_run(argv, NULL, 3000, &out, &e), 1, "%s", e);
    cr_assert(strstr(e, "qarbiter.lock") && strstr(e, "symlink"), "%s", e);
    free(out), free(e);
    f = fopen(victim, "r");
    char buf[64] = "";
    cr_assert_not_null(fgets(buf, sizeof buf, f));
    fclose(f);
    cr_assert_str_eq(buf, "precious\n", "the link's target is untouched");
    /* a state dir and a tenant dir others can write are refused alike */
    cr_assert_eq(unlink(lock), 0);
    cr_assert_eq(chmod(state, 0770), 0);
    cr_assert_eq(qt_run(argv, NULL, 3000, &out, &e), 1, "%s", e);
    cr_assert(strstr(e, "state dir") && strstr(e, "is writable by its group"), "%s", e);
    free(out), free(e);
    cr_assert_eq(chmod(state, 0700), 0);
    char *tenant = path_in(root, "tenant");
    cr_assert_eq(mkdir(tenant, 0777), 0);
    cr_assert_eq(chmod(tenant, 0777), 0);
    const char *targv[] = {bin, "--socket-dir", sock, "--tenant-dir", tenant,
                           "--state-dir", state, NULL};
    cr_assert_eq(qt_run(targv, NULL, 3000, &out, &e), 1, "%s", e);
    cr_assert(strstr(e, "tenant dir") && strstr(e, "is writable by everyone"), "%s", e);
    free(out), free(e);
    free(root), free(sock), free(state), free(victim), free(lock), free(bin), free(tenant);
}

/* Regression (issue 8): a vGPU file someone else wrote (a chosen secret, a 64 GiB quota)
 * was adopted. */
Test(qa_daemon, a_vgpu_file_the_arbiter_did_not_write_stops_the_start)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to give the file to another user");
    qt_arbiter_t *arb;
    char *file = killed_with_a_vgpu(&arb);
    cr_assert_eq(chown(file, 65534, 65534), 0);
    char *e;
    cr_assert_eq(start_on(arb, NULL, &e), 1, "%s", e);
    cr_assert(strstr(last_line(e), file) && strstr(last_line(e), "belongs to uid 65534"), "%s",
              e);
    free(e), free(file);
    qt_arbiter_destroy(&arb);
}

/* ---- raw sockets ------------------------------------------------------------------- */

struct raw {
    void *ctx;
    void *sock;
};

static struct raw raw_connect(const qt_arbiter_t *arb, const char *file)
{
    struct raw r = {zmq_ctx_new(), NULL};
    r.sock = zmq_socket(r.ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(r.sock, ZMQ_LINGER, &zero, sizeof zero);
    char ep[300];
    snprintf(ep, sizeof ep, "ipc://%s/%s", qt_arbiter_socket_dir(arb), file);
    cr_assert_eq(zmq_connect(r.sock, ep), 0);
    return r;
}

static void raw_close(struct raw *r)
{
    zmq_close(r->sock);
    zmq_ctx_term(r->ctx);
}

static void raw_send(struct raw *r, const void *buf, size_t len, int flags)
{
    cr_assert_geq(zmq_send(r->sock, buf, len, flags), 0);
}

static void raw_send_msg(struct raw *r, qp_msg_t *m)
{
    void *buf;
    size_t len;
    cr_assert_eq(qp_msg_encode(m, NULL, &buf, &len), 0);
    raw_send(r, buf, len, 0);
    free(buf);
    qp_msg_destroy(&m);
}

/* The next reply within ms, or NULL. */
static qp_msg_t *raw_recv(struct raw *r, int ms)
{
    zmq_pollitem_t it = {r->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0)
        return NULL;
    zmq_msg_t f;
    zmq_msg_init(&f);
    cr_assert_geq(zmq_msg_recv(&f, r->sock, 0), 0);
    qp_msg_t *m = NULL;
    cr_assert_eq(qp_msg_decode(zmq_msg_data(&f), zmq_msg_size(&f), &qp_caps_reply, &m, NULL), 0);
    zmq_msg_close(&f);
    return m;
}

/* Asserts that the next reply is an error with code, id and words in its msg. */
static void expect_error(struct raw *r, const char *code, uint64_t id, const char *words)
{
    qp_msg_t *m = raw_recv(r, 3000);
    cr_assert_not_null(m, "no reply (wanted %s: %s)", code, words);
    const char *c = NULL, *text = NULL;
    cr_assert(qp_msg_is_error(m), "wanted an error");
    qp_msg_get_str(m, "code", &c);
    qp_msg_get_str(m, "msg", &text);
    cr_assert_str_eq(c, code, "%s", text);
    cr_assert_eq(qp_msg_id(m), id, "%s", text);
    cr_assert(strstr(text, words), "'%s' not in: %s", words, text);
    qp_msg_destroy(&m);
}

static qp_msg_t *req(const char *type, uint64_t id)
{
    qp_msg_t *m = qp_msg_new(type);
    qp_msg_set_uint(m, "id", id);
    return m;
}

static void assert_serves(const qt_arbiter_t *arb)
{
    qv_client_t *c = ctl_client(arb);
    qv_vgpu_list_t *l;
    char err[QV_ERR_LEN];
    cr_assert_eq(qv_list(c, &l, err), 0, "%s", err);
    qv_vgpu_list_free(&l);
    qv_disconnect(&c);
}

Test(qa_daemon, hostile_messages_are_answered_and_the_next_client_is_served)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    struct raw r = raw_connect(arb, "admin.sock");

    raw_send(&r, "\xc1garbage", 8, 0);
    expect_error(&r, QP_E_PROTO, 0, "malformed message");
    qp_msg_t *list = req("list", 5);
    void *buf;
    size_t len;
    qp_msg_encode(list, NULL, &buf, &len);
    raw_send(&r, buf, len - 1, 0);
    expect_error(&r, QP_E_PROTO, 0, "truncated");
    free(buf);
    qp_msg_destroy(&list);
    raw_send_msg(&r, req("list", 6));
    expect_error(&r, QP_E_NOSESSION, 6, "hello first");
    qp_msg_t *h = qp_new_admin_hello("raw/1");
    qp_msg_set_uint(h, "proto", 2);
    qp_msg_set_uint(h, "id", 7);
    raw_send_msg(&r, h);
    expect_error(&r, QP_E_PROTO, 7, "client speaks 2, arbiter speaks 1");
    h = qp_new_admin_hello("raw/1");
    qp_msg_set_uint(h, "id", 8);
    raw_send_msg(&r, h);
    qp_msg_t *ok = raw_recv(&r, 3000);
    cr_assert_not_null(ok);
    cr_assert_str_eq(qp_msg_type(ok), "ok");
    qp_msg_destroy(&ok);

    qp_msg_t *m = req("create", 9);
    qp_msg_set_str(m, "vm", "x");
    qp_msg_set_str(m, "share", "lots");
    raw_send_msg(&r, m);
    expect_error(&r, QP_E_PROTO, 9, "field 'share'");
    raw_send_msg(&r, req("self_destruct", 10));
    expect_error(&r, QP_E_PROTO, 10, "unknown message type");
    m = req("resize", 11);
    qp_msg_set_uint(m, "vgpu", 1);
    raw_send_msg(&r, m);
    expect_error(&r, QP_E_PROTO, 11, "field 'vgpu'");
    m = req("create", 15);
    qp_msg_set_str(m, "vm", "x");
    qp_msg_set_str(m, "profile", "Q1");
    qp_msg_set_int(m, "gpu", -7);
    raw_send_msg(&r, m);
    expect_error(&r, QP_E_INVALID, 15, "gpu -7 is not a GPU index");
    m = req("create", 12);
    qp_msg_set_str(m, "vm", "x");
    qp_msg_set_uint(m, "memory_mb", 1024);
    qp_msg_set_uint(m, "share", 4000000000u);
    raw_send_msg(&r, m);
    expect_error(&r, QP_E_INVALID, 12, "share");
    raw_send(&r, "\x81\xa1t\xa4list", 7, ZMQ_SNDMORE);
    raw_send(&r, "second", 6, 0);
    expect_error(&r, QP_E_PROTO, 0, "one frame");
    m = req("hb", 13); /* a tenant request on the admin socket */
    qp_msg_set_uint(m, "mem_used", 0);
    qp_msg_set_uint(m, "mem_reserved", 0);
    raw_send_msg(&r, m);
    expect_error(&r, QP_E_AUTH, 13, "not allowed on admin.sock");

    /* a tenant hello on the admin socket */
    qp_msg_t *th = qp_new_tenant_hello("raw/1", "vg-1", "00", 1, 0);
    qp_msg_set_uint(th, "id", 14);
    raw_send_msg(&r, th);
    expect_error(&r, QP_E_AUTH, 14, "role 'tenant' is not served on admin.sock");

    /* random junk: answered or dropped, never fatal */
    srand(7);
    for (int i = 0; i < 2000; i++) {
        uint8_t junk[64];
        size_t n = (size_t)(rand() % 64);
        for (size_t k = 0; k < n; k++)
            junk[k] = (uint8_t)rand();
        if (n)
            junk[0] = (uint8_t)(0x80 | (rand() & 0xf));
        raw_send(&r, junk, n, 0);
    }
    int replies = 0;
    qp_msg_t *x;
    while ((x = raw_recv(&r, 500))) {
        replies++;
        qp_msg_destroy(&x);
    }
    cr_assert_geq(replies, 1000, "most junk is answered (%d)", replies);
    raw_close(&r);
    assert_serves(arb);
    qt_arbiter_destroy(&arb);
}

Test(qa_daemon, an_oversized_frame_costs_only_its_sender_the_connection)
{
    qt_arbiter_t *arb = ctl_arbiter(NULL, NULL);
    struct raw r = raw_connect(arb, "tenant.sock");
    size_t big = 100 * 1024;
    char *buf = calloc(1, big);
    buf[0] = (char)0x81;
    raw_send(&r, buf, big, 0);
    free(buf);
    cr_assert_null(raw_recv(&r, 300), "no answer to a frame over the limit");
    assert_serves(arb);
    /* the sender reconnects by itself and is served again */
    raw_send_msg(&r, req("mem_reserve", 3));
    qp_msg_t *m = raw_recv(&r, 3000);
    cr_assert_not_null(m);
    cr_assert(qp_msg_is_error(m));
    qp_msg_destroy(&m);
    raw_close(&r);
    qt_arbiter_destroy(&arb);
}

Test(qa_daemon, clients_that_never_read_or_never_speak_do_not_block_others)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN], err[QV_ERR_LEN];
    for (int i = 0; i < 20; i++)
        ctl_create(c, "filler", "Q1", id, secret);
    /* one floods requests whose replies (all 20 vGPUs) it never reads */
    struct raw flood = raw_connect(arb, "admin.sock");
    qp_msg_t *h = qp_new_admin_hello("flood/1");
    qp_msg_set_uint(h, "id", 1);
    raw_send_msg(&flood, h);
    for (int i = 0; i < 5000; i++) {
        qp_msg_t *m = req("list", (uint64_t)i + 2);
        void *buf;
        size_t len;
        qp_msg_encode(m, NULL, &buf, &len);
        zmq_send(flood.sock, buf, len, ZMQ_DONTWAIT);
        free(buf);
        qp_msg_destroy(&m);
    }
    /* others connect at the socket level and never finish the handshake, or send junk */
    int silent = socket(AF_UNIX, SOCK_STREAM, 0), noisy = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/admin.sock", qt_arbiter_socket_dir(arb));
    cr_assert_eq(connect(silent, (struct sockaddr *)&sun, sizeof sun), 0);
    cr_assert_eq(connect(noisy, (struct sockaddr *)&sun, sizeof sun), 0);
    cr_assert_eq(write(noisy, "GET / HTTP/1.0\r\n\r\n", 18), 18);
    /* meanwhile a well-behaved client is served promptly */
    uint64_t worst = 0;
    for (int i = 0; i < 200; i++) {
        uint64_t t0 = qt_now_ns();
        qv_vgpu_t v;
        cr_assert_eq(qv_info(c, id, &v, err), 0, "%s", err);
        uint64_t dt = qt_now_ns() - t0;
        worst = dt > worst ? dt : worst;
    }
    cr_assert_lt(worst, 1000000000ull, "worst info took %llu ms",
                 (unsigned long long)(worst / 1000000));
    close(silent);
    close(noisy);
    raw_close(&flood);
    assert_serves(arb);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

/* A child that joins vGPU id and keeps GPU dev busy with qsim_spin kernels for ms under
 * a compute lease that it keeps extending, as the shim does; exits 0 when all went
 * well. */
static pid_t busy_tenant(const qt_arbiter_t *arb, const char *id, const char *secret, int dev,
                         int ms)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid > 0)
        return pid;
    ctl_tenant_t *t = ctl_tenant_new(arb, id, secret);
    CUdevice d;
    CUcontext ctx;
    CUmodule mod;
    CUfunction spin;
    if (ctl_tenant_hello(t) != 0 || cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&d, dev) ||
        cuDevicePrimaryCtxRetain(&ctx, d) || cuCtxSetCurrent(ctx) ||
        cuModuleLoadData(&mod, "qsim") || cuModuleGetFunction(&spin, mod, "qsim_spin") ||
        ctl_tenant_send(t, qp_new_tok_req()) != 0 || !ctl_tenant_pump_until(t, &t->grants, 1, 3000))
        _exit(3);
    unsigned long long ns = 20000000; /* 20 ms kernels */
    void *params[] = {&ns};
    uint64_t end = qt_now_ns() + (uint64_t)ms * 1000000u;
    while (qt_now_ns() < end) {
        if (cuLaunchKernel(spin, 1, 1, 1, 1, 1, 1, 0, NULL, params, NULL) || cuCtxSynchronize())
            _exit(4);
        int grants = t->grants; /* alone on its GPU: always extended */
        if (ctl_tenant_send(t, qp_new_tok_ext(t->lease)) != 0 ||
            !ctl_tenant_pump_until(t, &t->grants, grants + 1, 3000))
            _exit(5);
    }
    _exit(0);
}

Test(qa_daemon, utilisation_is_measured_per_gpu_and_vgpu_and_steers_placement)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    char busy[QV_ID_LEN], idle[QV_ID_LEN], sb[QV_SECRET_LEN], si[QV_SECRET_LEN];
    char err[QV_ERR_LEN];
    ctl_create(c, "busy", "Q2", busy, sb);
    ctl_create(c, "idle", "Q2", idle, si);
    qv_vgpu_t vb = ctl_info(c, busy), vi = ctl_info(c, idle);
    cr_assert_neq(vb.gpu, vi.gpu, "spread placed them apart");
    pid_t child = busy_tenant(arb, busy, sb, vb.gpu, 5000);
    /* both figures are averages of 500 ms samples: wait until they have risen */
    bool seen = false;
    qv_gpu_list_t *g = NULL;
    for (int i = 0; i < 80 && !seen; i++) {
        qt_sleep_ms(50);
        qv_gpu_list_free(&g);
        cr_assert_eq(qv_gpus(c, &g, err), 0, "%s", err);
        seen = ctl_info(c, busy).util > 25 && g->gpus[vb.gpu].util > 25;
    }
    cr_assert(seen, "the busy vGPU (%.1f%%) and its GPU (%.1f%%) show their use",
              ctl_info(c, busy).util, g->gpus[vb.gpu].util);
    cr_assert_lt(g->gpus[vi.gpu].util, 5, "the other is not (%.1f%%)", g->gpus[vi.gpu].util);
    cr_assert_lt(ctl_info(c, idle).util, 5);
    /* equal reservations on GPUs 0 and 1 (and as full a GPU 2): the index would pick the
     * busy GPU 0, the measured utilisation steers the new vGPU away from it */
    cr_assert_eq(vb.gpu, 0);
    char third[QV_ID_LEN], s3[QV_SECRET_LEN];
    ctl_create(c, "third", "Q2", third, s3);
    cr_assert_neq(ctl_info(c, third).gpu, 0, "placed away from the busy GPU");
    qv_gpu_list_free(&g);
    int status;
    cr_assert_eq(waitpid(child, &status, WNOHANG), 0, "the child still works (%d)", status);
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

/* Regression: messages a closed connection left queued used to be taken, once the new
 * connection reused its fd number, as proof that the new one was gone. */
Test(qa_daemon, messages_left_by_a_closed_connection_do_not_hurt_the_next_one)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN], err[QV_ERR_LEN];
    for (int i = 0; i < 10; i++)
        ctl_create(c, "filler", "Q1", id, secret);
    for (int round = 0; round < 5; round++) {
        struct raw flood = raw_connect(arb, "admin.sock");
        qp_msg_t *h = qp_new_admin_hello("flood/1");
        qp_msg_set_uint(h, "id", 1);
        raw_send_msg(&flood, h);
        /* fewer than the arbiter's queue holds, all flushed before the close: the
         * arbiter reads them at once, sees the end of the connection and closes its fd,
         * while most requests still wait in its queue */
        for (int i = 0; i < 800; i++)
            raw_send_msg(&flood, req("list", (uint64_t)i + 2));
        int linger = 5000;
        zmq_setsockopt(flood.sock, ZMQ_LINGER, &linger, sizeof linger);
        raw_close(&flood);
        qv_client_t *next = ctl_client(arb);
        qv_vgpu_list_t *l;
        for (int i = 0; i < 20; i++) {
            cr_assert_eq(qv_list(next, &l, err), 0, "round %d call %d: %s", round, i, err);
            qv_vgpu_list_free(&l);
        }
        qv_disconnect(&next);
    }
    qv_disconnect(&c);
    qt_arbiter_destroy(&arb);
}

/* ---- connection floods ------------------------------------------------------------- */

/* Opens n plain connections to file of arb (they never speak ZMTP) into fds; returns
 * how many connect() accepted. */
static int flood_connect(const qt_arbiter_t *arb, const char *file, int *fds, int n)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/%s", qt_arbiter_socket_dir(arb), file);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fds[i], 0);
        if (connect(fds[i], (struct sockaddr *)&sun, sizeof sun) == 0)
            ok++;
    }
    return ok;
}

static void flood_close(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

/* A tenant opens and closes a session: the arbiter still serves tenant.sock. */
static void assert_tenant_served(const qt_arbiter_t *arb, qv_client_t *c, const char *id,
                                 const char *secret)
{
    ctl_tenant_t *t = ctl_tenant_new(arb, id, secret);
    int rc = -1;
    for (int i = 0; i < 20 && rc != 0; i++) /* closed connections are noticed in batches */
        if ((rc = ctl_tenant_hello(t)) != 0)
            qt_sleep_ms(100);
    cr_assert_eq(rc, 0, "a tenant is served again once the flood is gone");
    cr_assert(ctl_wait_procs(c, id, 1, 2000));
    ctl_tenant_destroy(&t);
}

Test(qa_daemon, running_out_of_file_descriptors_is_survived_and_admins_are_served)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "vm-f", "Q1", id, secret);
    pid_t pid = qt_proc_pid(qt_arbiter_proc(arb));
    /* a limit of 1024 descriptors, and half as many connections again */
    struct rlimit rl = {1024, 1024};
    cr_assert_eq(prlimit(pid, RLIMIT_NOFILE, &rl, NULL), 0, "%s", strerror(errno));
    qt_sleep_ms(400); /* the arbiter reads its limit every 250 ms */
    enum { N = 1500 };
    int fds[N];
    flood_connect(arb, "tenant.sock", fds, N);
    qt_sleep_ms(300);
    assert_serves(arb);
    cr_assert_eq(waitpid(pid, NULL, WNOHANG), 0, "the arbiter survives");
    flood_close(fds, N);
    assert_tenant_served(arb, c, id, secret);
    assert_serves(arb);
    qv_disconnect(&c);
    qt_proc_t *proc = qt_arbiter_proc(arb);
    qt_proc_kill(proc, SIGTERM);
    cr_assert_eq(qt_proc_wait(proc, 5000), 0);
    const char *log = qt_proc_stderr(proc);
    cr_assert(strstr(log, "descriptors"), "running out is logged: %s", log);
    cr_assert_lt(ctl_count_of(log, "descriptors"), 20, "once per burst, not per connection: %s",
                 log);
    qt_arbiter_destroy(&arb);
}

Test(qa_daemon, tenant_connections_beyond_the_cap_are_closed_with_one_warning)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, "[arbiter]\nmax_tenant_connections = 50\n");
    qv_client_t *c = ctl_client(arb);
    char id[QV_ID_LEN], secret[QV_SECRET_LEN];
    ctl_create(c, "vm-f", "Q1", id, secret);
    pid_t pid = qt_proc_pid(qt_arbiter_proc(arb));
    int before = ctl_open_fds(pid);
    enum { N = 300 };
    int fds[N];
    flood_connect(arb, "tenant.sock", fds, N);
    qt_sleep_ms(500);
    assert_serves(arb);
    int during = ctl_open_fds(pid);
    cr_assert_lt(during, before + 50 + 20, "at most the cap stays open (%d, then %d)", before,
                 during);
    /* a connection closed by the arbiter reads end-of-file after libzmq's greeting */
    int closed = 0;
    for (int i = 0; i < N; i++) {
        char b[64];
        ssize_t n;
        while ((n = recv(fds[i], b, sizeof b, MSG_DONTWAIT)) > 0)
            ;
        closed += n == 0;
    }
    cr_assert_geq(closed, N - 50 - 5, "%d of %d closed", closed, N);
    flood_close(fds, N);
    assert_tenant_served(arb, c, id, secret);
    qv_disconnect(&c);
    qt_proc_t *proc = qt_arbiter_proc(arb);
    qt_proc_kill(proc, SIGTERM);
    cr_assert_eq(qt_proc_wait(proc, 5000), 0);
    const char *log = qt_proc_stderr(proc);
    cr_assert(strstr(log, "max_tenant_connections"), "the cap is logged: %s", log);
    cr_assert_lt(ctl_count_of(log, "max_tenant_connections"), 5, "once per burst: %s", log);
    qt_arbiter_destroy(&arb);
}

Test(qa_daemon, a_connection_that_never_finishes_its_handshake_is_closed)
{
    qt_arbiter_t *arb = ctl_arbiter(CTL_GPUS, NULL);
    int fd;
    cr_assert_eq(flood_connect(arb, "tenant.sock", &fd, 1), 1);
    /* the arbiter closes it after its handshake interval (3 s), not libzmq's 30 s */
    uint64_t t0 = qt_now_ns();
    ssize_t n = 1;
    while (n != 0 && qt_now_ns() - t0 < 15000000000ull) {
        char b[64];
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) == 1)
            n = recv(fd, b, sizeof b, 0);
    }
    cr_assert_eq(n, 0, "the arbiter closed the silent connection");
    close(fd);
    assert_serves(arb);
    qt_arbiter_destroy(&arb);
}

/* ---- --tenant-dir ------------------------------------------------------------------ */

static bool file_exists(void *arg)
{
    struct stat st;
    return stat(arg, &st) == 0;
}

static int entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A tenant hello with a wrong secret on path is answered `auth`: the socket is served. */
static void assert_tenant_sock_served(const char *path)
{
    struct raw r = {zmq_ctx_new(), NULL};
    r.sock = zmq_socket(r.ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(r.sock, ZMQ_LINGER, &zero, sizeof zero);
    char ep[300];
    snprintf(ep, sizeof ep, "ipc://%s", path);
    cr_assert_eq(zmq_connect(r.sock, ep), 0);
    qp_msg_t *h = qp_new_tenant_hello("raw/1", "vg-1", "wrong", getpid(), 0);
    qp_msg_set_uint(h, "id", 7);
    raw_send_msg(&r, h);
    expect_error(&r, QP_E_AUTH, 7, "authentication failed");
    raw_close(&r);
}

Test(qa_daemon, a_tenant_dir_holds_tenant_sock_alone_and_is_served_again_after_a_restart)
{
    qt_sim_private(NULL);
    char *bin = qt_build_path("qarbiter"), *dir = qt_tmpdir();
    char *sock = path_in(dir, "sock"), *state = path_in(dir, "state");
    char *tdir = path_in(dir, "tenant"), *other = path_in(dir, "other");
    char *admin = path_in(sock, "admin.sock"), *tsock = path_in(tdir, "tenant.sock");
    char *cdi = path_in(dir, "cdi");
    const char *argv[] = {bin,   "--socket-dir", sock, "--tenant-dir", tdir, "--state-dir",
                          state, "--cdi-dir",    cdi,  NULL};
    for (int round = 0; round < 2; round++) {
        unlink(admin); /* a killed arbiter leaves its files */
        qt_proc_t *p = qt_spawn(argv, NULL);
        cr_assert(qt_wait_until(file_exists, admin, 5000), "%s", qt_proc_stderr(p));
        cr_assert(exists(tdir, "tenant.sock"));
        cr_assert_not(exists(sock, "tenant.sock"));
        cr_assert(exists(tdir, "vgpu"), "the mount point of containers' credentials");
        cr_assert_eq(entries(tdir), 2, "tenant.sock alone with it: the directory to mount");
        assert_tenant_sock_served(tsock);
        if (round == 0) {
            /* an arbiter of another socket dir must not take that tenant.sock */
            char *state2 = path_in(dir, "state2");
            const char *again[] = {bin,    "--socket-dir", other, "--tenant-dir", tdir,
                                   "--state-dir", state2,  "--cdi-dir", cdi,      NULL};
            char *err;
            cr_assert_eq(qt_run(again, NULL, 5000, NULL, &err), 1);
            cr_assert(strstr(err, "another qarbiter serves"), "%s", err);
            free(err), free(state2);
            assert_tenant_sock_served(tsock);
        }
        qt_proc_kill(p, round == 0 ? SIGKILL : SIGTERM);
        qt_proc_wait(p, 5000);
        qt_proc_destroy(&p);
    }
    cr_assert_not(exists(tdir, "tenant.sock"), "a clean stop removes it");
    free(bin), free(dir), free(sock), free(state), free(tdir), free(other), free(admin);
    free(tsock), free(cdi);
}
