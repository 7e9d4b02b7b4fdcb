/* test_arbiter_ledger.c - what tenant processes may hold, as a restarted arbiter finds it:
 * slots outlive the arbiter that wrote them (also when it is killed), a reboot or a
 * damaged file forgets them, the file grows, and a process is told from another by its
 * start time. */
#include "arbiter/ledger.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static qa_ledger_t *open_ok(const char *dir)
{
    char err[QP_ERR_LEN];
    qa_ledger_t *l = qa_ledger_open(dir, err);
    cr_assert_not_null(l, "%s", err);
    return l;
}

Test(qa_ledger, a_new_ledger_holds_nothing)
{
    char *dir = qt_tmpdir();
    qa_ledger_t *l = open_ok(dir);
    qa_ledger_entry_t *e;
    size_t n;
    cr_assert_eq(qa_ledger_previous(l, &e, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(qa_ledger_used(l), 0);
    qa_ledger_close(&l);
    cr_assert_null(l);
    free(dir);
}

/* What a killed arbiter wrote last is what the next one reads: the child writes and dies
 * by SIGKILL without closing anything. */
Test(qa_ledger, slots_in_use_outlive_a_killed_arbiter_with_their_last_figures)
{
    char *dir = qt_tmpdir();
    pid_t child = fork();
    if (child == 0) {
        char err[QP_ERR_LEN];
        qa_ledger_t *l = qa_ledger_open(dir, err);
        int a = qa_ledger_add(l, "vg-1", 0, 0, 100);
        int b = qa_ledger_add(l, "vg-2", 4242, 77, 200);
        int c = qa_ledger_add(l, "vg-1", 0, 0, 300);
        qa_ledger_set_bytes(l, (uint32_t)a, 150);
        qa_ledger_set_process(l, (uint32_t)a, 4141, 66);
        qa_ledger_free(l, (uint32_t)c);
        (void)b;
        raise(SIGKILL);
    }
    int st;
    waitpid(child, &st, 0);
    cr_assert(WIFSIGNALED(st));
    qa_ledger_t *l = open_ok(dir);
    qa_ledger_entry_t *e;
    size_t n;
    cr_assert_eq(qa_ledger_previous(l, &e, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(qa_ledger_used(l), 2, "still in use until freed");
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].vgpu, "vg-1") == 0) {
            cr_assert_eq(e[i].pid, 4141);
            cr_assert_eq(e[i].start, 66);
            cr_assert_eq(e[i].bytes, 150);
        } else {
            cr_assert_str_eq(e[i].vgpu, "vg-2");
            cr_assert_eq(e[i].pid, 4242);
            cr_assert_eq(e[i].start, 77);
            cr_assert_eq(e[i].bytes, 200);
        }
    }
    /* new slots never take theirs */
    int s = qa_ledger_add(l, "vg-3", 1, 1, 1);
    cr_assert(s >= 0 && (uint32_t)s != e[0].slot && (uint32_t)s != e[1].slot);
    qa_ledger_free(l, e[0].slot);
    qa_ledger_free(l, e[1].slot);
    free(e);
    qa_ledger_close(&l);
    l = open_ok(dir);
    cr_assert_eq(qa_ledger_previous(l, &e, &n), 0);
    cr_assert_eq(n, 1, "only the slot left in use");
    cr_assert_str_eq(e[0].vgpu, "vg-3");
    free(e);
    qa_ledger_close(&l);
    free(dir);
}

Test(qa_ledger, grows_past_its_first_slots)
{
    char *dir = qt_tmpdir();
    qa_ledger_t *l = open_ok(dir);
    for (int i = 0; i < 1000; i++) {
        char id[16];
        snprintf(id, sizeof id, "vg-%d", i + 1);
        cr_assert_geq(qa_ledger_add(l, id, i + 1, 5, (uint64_t)i), 0);
    }
    qa_ledger_close(&l);
    l = open_ok(dir);
    qa_ledger_entry_t *e;
    size_t n;
    cr_assert_eq(qa_ledger_previous(l, &e, &n), 0);
    cr_assert_eq(n, 1000);
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += e[i].bytes;
    cr_assert_eq(sum, 999ull * 1000 / 2);
    free(e);
    qa_ledger_close(&l);
    free(dir);
}

/* No process survives a reboot: slots written in another boot mean nothing. */
Test(qa_ledger, another_boots_or_a_damaged_file_is_forgotten)
{
    char *dir = qt_tmpdir(), *path;
    cr_assert(asprintf(&path, "%s/holders", dir) > 0);
    qa_ledger_t *l = open_ok(dir);
    qa_ledger_add(l, "vg-1", 1, 1, 1);
    qa_ledger_close(&l);
    FILE *f = fopen(path, "r+");
    fseek(f, 8, SEEK_SET);
    fputs("00000000-0000-0000-0000-000000000000", f); /* the boot id */
    fclose(f);
    l = open_ok(dir);
    qa_ledger_entry_t *e;
    size_t n;
    cr_assert_eq(qa_ledger_previous(l, &e, &n), 0);
    cr_assert_eq(n, 0);
    qa_ledger_close(&l);
    f = fopen(path, "w");
    fputs("garbage", f);
    fclose(f);
    l = open_ok(dir);
    cr_assert_eq(qa_ledger_previous(l, &e, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_geq(qa_ledger_add(l, "vg-1", 1, 1, 1), 0, "usable again");
    qa_ledger_close(&l);
    free(path), free(dir);
}

Test(qa_ledger, a_planted_or_linked_file_is_refused)
{
    char *dir = qt_tmpdir(), *path, *other, err[QP_ERR_LEN];
    cr_assert(asprintf(&path, "%s/holders", dir) > 0);
    cr_assert(asprintf(&other, "%s/other", dir) > 0);
    fclose(fopen(other, "w"));
    cr_assert_eq(symlink(other, path), 0);
    cr_assert_null(qa_ledger_open(dir, err));
    cr_assert(strstr(err, "holders") && strstr(err, "symlink"), "%s", err);
    unlink(path);
    fclose(fopen(path, "w"));
    chmod(path, 0666);
    cr_assert_null(qa_ledger_open(dir, err));
    cr_assert(strstr(err, "writable by everyone"), "%s", err);
    free(path), free(other), free(dir);
}

Test(qa_ledger, a_process_is_told_apart_by_its_start_time_and_a_zombie_is_gone)
{
    uint64_t mine, again;
    cr_assert_eq(qa_ledger_proc_start(getpid(), &mine), 0);
    cr_assert_eq(qa_ledger_proc_start(getpid(), &again), 0);
    cr_assert_eq(mine, again);
    cr_assert_gt(mine, 0);
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    siginfo_t si;
    cr_assert_eq(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0); /* a zombie now */
    uint64_t start;
    cr_assert_eq(qa_ledger_proc_start(child, &start), -ESRCH, "a zombie holds nothing");
    waitpid(child, NULL, 0);
    cr_assert_eq(qa_ledger_proc_start(child, &start), -ESRCH);
    cr_assert_eq(qa_ledger_proc_start(0, &start), -ESRCH);
}
