/* test_arbiter_store.c - the state dir: atomic files, reloading, ids never reused,
 * leftovers of interrupted writes, and refusing what it cannot read. */
#include "arbiter/store.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

struct seen {
    qa_vgpu_t v[8];
    char uuid[8][QP_UUID_LEN];
    int n;
};

static int collect(void *arg, const qa_vgpu_t *v, const char *uuid, char err[QP_ERR_LEN])
{
    (void)err;
    struct seen *s = arg;
    s->v[s->n] = *v;
    snprintf(s->uuid[s->n++], QP_UUID_LEN, "%s", uuid);
    return 0;
}

static qa_vgpu_t sample(const char *id)
{
    qa_vgpu_t v = {.memory_mb = 2048, .share = 20, .limit = 40, .created = 1700000000};
    snprintf(v.id, sizeof v.id, "%s", id);
    snprintf(v.vm, sizeof v.vm, "vm \"quoted\" \\ name");
    snprintf(v.secret, sizeof v.secret, "00112233445566778899aabbccddeeff");
    snprintf(v.profile, sizeof v.profile, "Q2");
    return v;
}

Test(qa_store, writes_reloads_and_removes_vgpus)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN];
    qa_store_t *s = qa_store_open(dir, err);
    cr_assert_not_null(s, "%s", err);
    qa_vgpu_t a = sample("vg-1"), b = sample("vg-2");
    cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), 0, "%s", err);
    cr_assert_eq(qa_store_put(s, &b, "GPU-b", err), 0, "%s", err);
    b.share = 30;
    cr_assert_eq(qa_store_put(s, &b, "GPU-b", err), 0, "%s", err);
    cr_assert_eq(qa_store_remove(s, "vg-1", err), 0, "%s", err);
    cr_assert_eq(qa_store_remove(s, "vg-1", err), 0, "removing twice is fine");
    cr_assert_eq(qa_store_note_ids(s, 3, err), 0, "%s", err);
    qa_store_close(&s);
    cr_assert_null(s);

    s = qa_store_open(dir, err);
    struct seen seen = {0};
    uint64_t next;
    cr_assert_eq(qa_store_load(s, collect, &seen, &next, err), 0, "%s", err);
    cr_assert_eq(seen.n, 1);
    cr_assert_str_eq(seen.v[0].id, "vg-2");
    cr_assert_str_eq(seen.v[0].vm, "vm \"quoted\" \\ name");
    cr_assert_str_eq(seen.v[0].secret, b.secret);
    cr_assert_eq(seen.v[0].share, 30);
    cr_assert_eq(seen.v[0].limit, 40);
    cr_assert_eq(seen.v[0].created, 1700000000);
    cr_assert_str_eq(seen.uuid[0], "GPU-b");
    cr_assert_geq(next, 3, "ids below 3 were handed out");
    qa_store_close(&s);
    struct stat st;
    char *path;
    cr_assert(asprintf(&path, "%s/vgpus/vg-2.json", dir) > 0);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "secrets are not for everyone");
    free(path);
    free(dir);
}

Test(qa_store, id_bounds_are_written_ahead_so_a_crash_never_reuses_one)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN];
    qa_store_t *s = qa_store_open(dir, err);
    for (uint64_t id = 2; id < 200; id++)
        cr_assert_eq(qa_store_note_ids(s, id, err), 0, "%s", err);
    qa_store_close(&s);
    s = qa_store_open(dir, err);
    struct seen seen = {0};
    uint64_t next;
    cr_assert_eq(qa_store_load(s, collect, &seen, &next, err), 0, "%s", err);
    cr_assert_geq(next, 200);
    cr_assert_lt(next, 200 + 65, "bounded skip ahead");
    qa_store_close(&s);
    free(dir);
}

Test(qa_store, leftover_temporary_files_are_removed_and_bad_files_named)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN];
    qa_store_t *s = qa_store_open(dir, err);
    qa_vgpu_t a = sample("vg-4");
    qa_store_put(s, &a, "GPU-a", err);
    qa_store_close(&s);
    char *tmp, *bad;
    cr_assert(asprintf(&tmp, "%s/vgpus/vg-5.json.tmp", dir) > 0);
    cr_assert(asprintf(&bad, "%s/vgpus/vg-6.json", dir) > 0);
    FILE *f = fopen(tmp, "w");
    fputs("{\"half", f);
    fclose(f);
    s = qa_store_open(dir, err);
    cr_assert_neq(access(tmp, F_OK), 0, "an interrupted write is cleaned up");
    struct seen seen = {0};
    uint64_t next;
    cr_assert_eq(qa_store_load(s, collect, &seen, &next, err), 0, "%s", err);
    cr_assert_eq(seen.n, 1);
    qa_store_close(&s);
    const char *bodies[] = {
        "not json",
        "{\"version\": 1}",
        "{\"version\": 2, \"id\": \"vg-6\"}",
        "{\"version\":1,\"id\":\"vg-7\",\"vm\":\"a\",\"secret\":\"s\",\"profile\":\"Q1\","
        "\"gpu_uuid\":\"g\",\"memory_mb\":1,\"share\":1,\"limit\":0,\"created\":0}",
        "{\"version\":1,\"id\":\"vg-6\",\"vm\":\"a\",\"secret\":\"s\",\"profile\":\"Q1\","
        "\"gpu_uuid\":\"g\",\"memory_mb\":1,\"share\":500,\"limit\":0,\"created\":0}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        f = fopen(bad, "w");
        fputs(bodies[i], f);
        fclose(f);
        s = qa_store_open(dir, err);
        memset(&seen, 0, sizeof seen);
        cr_assert_eq(qa_store_load(s, collect, &seen, &next, err), -EINVAL, "case %zu", i);
        cr_assert(strstr(err, "vg-6.json") && strstr(err, "fix or remove"), "case %zu: %s", i, err);
        qa_store_close(&s);
    }
    free(tmp), free(bad), free(dir);
}

static void write_file(const char *dir, const char *name, const void *body, size_t len)
{
    char *path;
    cr_assert(asprintf(&path, "%s/%s", dir, name) > 0);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(body, 1, len, f), len);
    fclose(f);
    free(path);
}

/* Loads dir into seen with warnings logged to a string; returns qa_store_load's result. */
static int load_logged(const char *dir, struct seen *seen, uint64_t *next, char *err, char *text,
                       size_t cap)
{
    qa_store_t *s = qa_store_open(dir, err);
    cr_assert_not_null(s, "%s", err);
    FILE *logf = tmpfile();
    qa_log_t log = {QA_INFO, logf};
    qa_store_set_log(s, &log);
    memset(seen, 0, sizeof *seen);
    int rc = qa_store_load(s, collect, seen, next, err);
    qa_store_close(&s);
    rewind(logf);
    size_t n = fread(text, 1, cap - 1, logf);
    text[n] = '\0';
    fclose(logf);
    return rc;
}

/* Waits until what the store wrote has been synced (the sync thread batches 50 ms). */
static void let_sync(void)
{
    qt_sleep_ms(300);
}

/* Regression (issue 8): a resize renamed into place before its data reached the disk left,
 * after a power cut, an empty or cut-short file, and the vGPU was skipped: lost, with its
 * secret. Now the previous version, which had reached the disk, is taken instead. */
Test(qa_store, a_change_a_power_cut_left_empty_or_cut_short_falls_back_to_the_previous_version)
{
    static const char zeros[300];
    const char cut[] = "{\"version\":1,\"id\":\"vg-4\",\"vm\":\"a";
    const struct {
        const void *body;
        size_t len;
        const char *words;
    } damage[] = {{"", 0, "vg-4.json is empty"},
                  {zeros, sizeof zeros, "vg-4.json is all zero bytes"},
                  {cut, sizeof cut - 1, "vg-4.json is cut short"}};
    for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
        char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "", text[4096];
        qa_store_t *s = qa_store_open(dir, err);
        cr_assert_not_null(s, "%s", err);
        qa_vgpu_t a = sample("vg-4");
        cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), 0, "%s", err);
        cr_assert_eq(qa_store_note_ids(s, 5, err), 0, "%s", err);
        let_sync();
        a.share = 30; /* the resize the power cut catches */
        cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), 0, "%s", err);
        qa_store_close(&s);
        write_file(dir, "vgpus/vg-4.json", damage[i].body, damage[i].len);
        struct seen seen;
        uint64_t next = 0;
        cr_assert_eq(load_logged(dir, &seen, &next, err, text, sizeof text), 0, "case %zu: %s", i,
                     err);
        cr_assert_eq(seen.n, 1, "case %zu: the vGPU is kept", i);
        cr_assert_str_eq(seen.v[0].id, "vg-4");
        cr_assert_str_eq(seen.v[0].secret, a.secret);
        cr_assert_eq(seen.v[0].share, 20, "case %zu: the version before the lost resize", i);
        cr_assert(strstr(text, damage[i].words) && strstr(text, "previous version is restored"),
                  "case %zu: %s", i, text);
        /* written back whole: the next start needs no fallback */
        cr_assert_eq(load_logged(dir, &seen, &next, err, text, sizeof text), 0, "%s", err);
        cr_assert_eq(seen.n, 1);
        cr_assert_null(strstr(text, "restored"), "%s", text);
        free(dir);
    }
}

/* Regression (issue 8): such a file without a whole previous version was skipped with a
 * warning, and its vGPU silently lost; README promises that a state file that cannot be
 * read stops the start. */
Test(qa_store, a_damaged_file_without_a_whole_previous_version_stops_the_load_naming_it)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "", text[4096];
    qa_store_t *s = qa_store_open(dir, err);
    qa_vgpu_t a = sample("vg-4"), b = sample("vg-9");
    cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), 0, "%s", err);
    cr_assert_eq(qa_store_put(s, &b, "GPU-a", err), 0, "%s", err);
    cr_assert_eq(qa_store_note_ids(s, 10, err), 0, "%s", err);
    qa_store_close(&s);
    write_file(dir, "vgpus/vg-9.json", "", 0);
    struct seen seen;
    uint64_t next = 0;
    cr_assert_eq(load_logged(dir, &seen, &next, err, text, sizeof text), -EINVAL);
    cr_assert(strstr(err, "vgpus/vg-9.json is empty and has no whole previous version") &&
                  strstr(err, "remove it to forget that vGPU"),
              "%s", err);
    free(dir);
}

Test(qa_store, a_destroyed_vgpus_previous_version_is_removed_with_it)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "";
    qa_store_t *s = qa_store_open(dir, err);
    qa_vgpu_t a = sample("vg-4");
    cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), 0, "%s", err);
    let_sync();
    cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), 0, "%s", err);
    char *prev;
    cr_assert(asprintf(&prev, "%s/vgpus/vg-4.json.prev", dir) > 0);
    cr_assert_eq(access(prev, F_OK), 0, "the synced version is kept");
    cr_assert_eq(qa_store_remove(s, "vg-4", err), 0, "%s", err);
    cr_assert_neq(access(prev, F_OK), 0);
    qa_store_close(&s);
    free(prev), free(dir);
}

/* Regression (issue 8): with meta.json lost or emptied, ids were taken from the vGPU
 * files, and those of vGPUs destroyed since were handed out again. */
Test(qa_store, a_missing_or_damaged_meta_file_stops_the_load_rather_than_reuse_ids)
{
    const struct {
        const char *body; /* NULL: removed */
        const char *words;
    } cases[] = {{NULL, "meta.json is missing"},
                 {"", "meta.json is empty"},
                 {"{\"version\":1}", "no valid 'next_id'"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "", text[4096];
        qa_store_t *s = qa_store_open(dir, err);
        qa_vgpu_t a = sample("vg-12");
        cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), 0, "%s", err);
        cr_assert_eq(qa_store_note_ids(s, 14, err), 0, "%s", err); /* vg-13 destroyed */
        qa_store_close(&s);
        char *meta;
        cr_assert(asprintf(&meta, "%s/meta.json", dir) > 0);
        if (cases[i].body)
            write_file(dir, "meta.json", cases[i].body, strlen(cases[i].body));
        else
            cr_assert_eq(unlink(meta), 0);
        struct seen seen;
        uint64_t next = 0;
        cr_assert_eq(load_logged(dir, &seen, &next, err, text, sizeof text), -EINVAL, "case %zu",
                     i);
        cr_assert(strstr(err, cases[i].words) && strstr(err, "next_id"), "case %zu: %s", i, err);
        free(meta), free(dir);
    }
}

Test(qa_store, a_new_state_dir_records_at_once_that_no_id_was_handed_out)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "", text[4096];
    struct seen seen;
    uint64_t next = 0;
    cr_assert_eq(load_logged(dir, &seen, &next, err, text, sizeof text), 0, "%s", err);
    cr_assert_eq(next, 1);
    cr_assert_eq(seen.n, 0);
    free(dir);
}

/* Regression (issue 8): two arbiters of different socket dirs shared a state dir, both
 * handed out vg-1, and the second's file replaced the first's answered vGPU. */
Test(qa_store, a_second_store_on_the_same_dir_is_refused_naming_the_first)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "";
    qa_store_t *s = qa_store_open(dir, err);
    cr_assert_not_null(s, "%s", err);
    pid_t child = fork();
    if (child == 0) { /* another process: flock() locks are per open file */
        qa_store_t *t = qa_store_open(dir, err);
        _exit(!t && strstr(err, "another qarbiter (pid ") && strstr(err, dir) ? 0 : 1);
    }
    int st;
    cr_assert_eq(waitpid(child, &st, 0), child);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the second store was not refused");
    qa_store_close(&s);
    s = qa_store_open(dir, err);
    cr_assert_not_null(s, "free again once the first is closed: %s", err);
    qa_store_close(&s);
    free(dir);
}

/* Regression (issue 8): a vGPU file planted by someone else (a chosen secret, a 64 GiB
 * quota) was adopted. */
Test(qa_store, files_that_are_not_the_arbiters_or_are_links_are_refused)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "", text[4096];
    qa_store_t *s = qa_store_open(dir, err);
    qa_vgpu_t a = sample("vg-4");
    cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), 0, "%s", err);
    qa_store_close(&s);
    char *file, *other;
    cr_assert(asprintf(&file, "%s/vgpus/vg-4.json", dir) > 0);
    cr_assert(asprintf(&other, "%s/elsewhere.json", dir) > 0);
    struct seen seen;
    uint64_t next;
    cr_assert_eq(chmod(file, 0666), 0);
    cr_assert_eq(load_logged(dir, &seen, &next, err, text, sizeof text), -EINVAL);
    cr_assert(strstr(err, "vg-4.json is writable by everyone"), "%s", err);
    cr_assert_eq(chmod(file, 0600), 0);
    if (geteuid() == 0) {
        cr_assert_eq(chown(file, 65534, 65534), 0);
        cr_assert_eq(load_logged(dir, &seen, &next, err, text, sizeof text), -EINVAL);
        cr_assert(strstr(err, "vg-4.json belongs to uid 65534"), "%s", err);
        cr_assert_eq(chown(file, 0, 0), 0);
    }
    cr_assert_eq(rename(file, other), 0);
    cr_assert_eq(symlink(other, file), 0);
    cr_assert_eq(load_logged(dir, &seen, &next, err, text, sizeof text), -EINVAL);
    cr_assert(strstr(err, "vg-4.json: a symlink"), "%s", err);
    free(file), free(other), free(dir);
}

Test(qa_store, a_state_dir_others_can_write_is_refused)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "";
    cr_assert_eq(chmod(dir, 0770), 0);
    cr_assert_null(qa_store_open(dir, err));
    cr_assert(strstr(err, "is writable by its group (mode 0770)"), "%s", err);
    cr_assert_eq(chmod(dir, 0700), 0);
    qa_store_t *s = qa_store_open(dir, err);
    cr_assert_not_null(s, "%s", err);
    qa_store_close(&s);
    char *vgpus;
    cr_assert(asprintf(&vgpus, "%s/vgpus", dir) > 0);
    cr_assert_eq(chmod(vgpus, 0777), 0);
    cr_assert_null(qa_store_open(dir, err));
    cr_assert(strstr(err, "vgpus is writable by everyone"), "%s", err);
    free(vgpus), free(dir);
}

Test(qa_store, an_unusable_state_dir_is_named)
{
    char err[QP_ERR_LEN];
    cr_assert_null(qa_store_open("/proc/qvgpu-state", err));
    cr_assert(strstr(err, "cannot use state dir /proc/qvgpu-state"), "%s", err);
}

/* Regression: a failed write (a full disk) named STATE/vg-1.json, a file that does not
 * exist, instead of STATE/vgpus/vg-1.json. A file size limit fails writes as a full disk
 * does. */
Test(qa_store, a_failed_write_names_the_file_it_could_not_write)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "";
    qa_store_t *s = qa_store_open(dir, err);
    cr_assert_not_null(s, "%s", err);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {16, 16};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    qa_vgpu_t a = sample("vg-1");
    cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), -EIO);
    char want[512];
    snprintf(want, sizeof want, "cannot write %s/vgpus/vg-1.json: ", dir);
    cr_assert(strstr(err, want), "want '%s' in: %s", want, err);
    cr_assert_eq(qa_store_note_ids(s, 2, err), -EIO);
    snprintf(want, sizeof want, "cannot write %s/meta.json: ", dir);
    cr_assert(strstr(err, want), "want '%s' in: %s", want, err);
    qa_store_close(&s);
    free(dir);
}
