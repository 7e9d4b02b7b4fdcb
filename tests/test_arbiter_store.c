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

/* What was logged to f, which it closes, as one string. */
static void read_log(FILE *f, char *text, size_t cap)
{
    rewind(f);
    size_t n = fread(text, 1, cap - 1, f);
    text[n] = '\0';
    fclose(f);
    cr_assert_gt(n, 0, "nothing logged");
}

Test(qa_store, files_a_power_cut_left_empty_or_cut_short_are_skipped_and_their_ids_kept)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "";
    qa_store_t *s = qa_store_open(dir, err);
    qa_vgpu_t a = sample("vg-4");
    cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), 0, "%s", err);
    cr_assert_eq(qa_store_note_ids(s, 5, err), 0, "%s", err);
    qa_store_close(&s);
    static const char zeros[300];
    const char cut[] = "{\"version\":1,\"id\":\"vg-900\",\"vm\":\"a";
    write_file(dir, "vgpus/vg-7.json", "", 0);
    write_file(dir, "vgpus/vg-8.json", zeros, sizeof zeros);
    write_file(dir, "vgpus/vg-900.json", cut, strlen(cut));

    s = qa_store_open(dir, err);
    FILE *logf = tmpfile();
    qa_log_t log = {QA_INFO, logf};
    qa_store_set_log(s, &log);
    struct seen seen = {0};
    uint64_t next = 0;
    cr_assert_eq(qa_store_load(s, collect, &seen, &next, err), 0, "%s", err);
    cr_assert_eq(seen.n, 1);
    cr_assert_str_eq(seen.v[0].id, "vg-4");
    cr_assert_eq(next, 901, "no id of a file seen is handed out again: %llu",
                 (unsigned long long)next);
    char text[4096];
    read_log(logf, text, sizeof text);
    cr_assert(strstr(text, "vg-7.json is empty"), "%s", text);
    cr_assert(strstr(text, "vg-8.json is all zero bytes"), "%s", text);
    cr_assert(strstr(text, "vg-900.json is cut short"), "%s", text);
    cr_assert(strstr(text, "warn"), "%s", text);
    qa_store_close(&s);
    free(dir);
}

Test(qa_store, an_empty_meta_file_gives_way_to_the_vgpu_files_ids)
{
    char *dir = qt_tmpdir(), err[QP_ERR_LEN] = "";
    qa_store_t *s = qa_store_open(dir, err);
    qa_vgpu_t a = sample("vg-12");
    cr_assert_eq(qa_store_put(s, &a, "GPU-a", err), 0, "%s", err);
    qa_store_close(&s);
    write_file(dir, "meta.json", "", 0);
    s = qa_store_open(dir, err);
    FILE *logf = tmpfile();
    qa_log_t log = {QA_INFO, logf};
    qa_store_set_log(s, &log);
    struct seen seen = {0};
    uint64_t next = 0;
    cr_assert_eq(qa_store_load(s, collect, &seen, &next, err), 0, "%s", err);
    cr_assert_eq(seen.n, 1);
    cr_assert_eq(next, 13);
    char text[4096];
    read_log(logf, text, sizeof text);
    cr_assert(strstr(text, "meta.json is empty"), "%s", text);
    qa_store_close(&s);
    free(dir);
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
