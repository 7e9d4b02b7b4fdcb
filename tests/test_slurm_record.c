/* test_slurm_record.c - the per-job file between the prolog and the steps: credentials
 * taken from `qgpuctl env`, written private and whole, read back or refused, and the
 * LD_PRELOAD a task gets. */
#include "slurm/record.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char env_output[] = "export LD_PRELOAD='/opt/qvgpu/lib/libqshim.so'\n"
                                 "export QVGPU_VGPU='vg-7'\n"
                                 "export QVGPU_SECRET='00112233445566778899aabbccddeeff'\n"
                                 "export QVGPU_SOCKET_DIR='/run/it'\\''s'\n"
                                 "export CUDA_VISIBLE_DEVICES='GPU-1234'\n";

Test(slurm_record, takes_the_credentials_from_qgpuctl_env)
{
    qsl_record_t rec = {0};
    char err[QSL_ERR_LEN];
    cr_assert_eq(qsl_record_from_env(env_output, &rec, err), 0, "%s", err);
    cr_assert_str_eq(rec.vgpu, "vg-7");
    cr_assert_str_eq(rec.secret, "00112233445566778899aabbccddeeff");
    cr_assert_str_eq(rec.socket_dir, "/run/it's", "a quote in a value is unescaped");
    cr_assert_str_eq(rec.gpu, "GPU-1234");
    cr_assert_str_eq(rec.preload, "/opt/qvgpu/lib/libqshim.so");
}

Test(slurm_record, refuses_env_output_that_lacks_or_garbles_a_variable)
{
    static const char *const bad[] = {
        "export QVGPU_VGPU='vg-7'\n",
        "export LD_PRELOAD='/x.so'\nexport QVGPU_VGPU='vg-7\nexport QVGPU_SECRET='s'\n"
        "export QVGPU_SOCKET_DIR='/d'\nexport CUDA_VISIBLE_DEVICES='GPU-1'\n",
        "export LD_PRELOAD=''\nexport QVGPU_VGPU='vg-7'\nexport QVGPU_SECRET='s'\n"
        "export QVGPU_SOCKET_DIR='/d'\nexport CUDA_VISIBLE_DEVICES='GPU-1'\n",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qsl_record_t rec = {0};
        char err[QSL_ERR_LEN] = "";
        cr_assert_eq(qsl_record_from_env(bad[i], &rec, err), -EPROTO, "case %zu accepted", i);
        cr_assert(strstr(err, "qgpuctl env"), "%s", err);
    }
}

Test(slurm_record, is_written_private_and_read_back_whole)
{
    char *dir = qt_tmpdir();
    char *state = NULL;
    cr_assert_geq(asprintf(&state, "%s/state", dir), 0);
    qsl_record_t rec = {0}, back;
    char err[QSL_ERR_LEN];
    cr_assert_eq(qsl_record_from_env(env_output, &rec, err), 0);
    cr_assert_eq(qsl_record_write(state, 42, &rec, err), 0, "%s", err);
    struct stat st;
    cr_assert_eq(stat(state, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700, "the directory is root's alone");
    char path[512];
    snprintf(path, sizeof path, "%s/42", state);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "the secret is in it");
    cr_assert_eq(qsl_record_read(state, 42, &back, err), 0, "%s", err);
    cr_assert_eq(memcmp(&rec, &back, sizeof rec), 0);
    snprintf(path, sizeof path, "%s/42.new", state);
    cr_assert_neq(access(path, F_OK), 0, "no temporary file is left");

    /* a job that got none: the reason survives, one line */
    qsl_record_t failed = {0};
    snprintf(failed.error, sizeof failed.error, "qvgpu: job 43 got no vGPU: no arbiter");
    cr_assert_eq(qsl_record_write(state, 43, &failed, err), 0);
    cr_assert_eq(qsl_record_read(state, 43, &back, err), 0);
    cr_assert_str_eq(back.vgpu, "");
    cr_assert_str_eq(back.error, "qvgpu: job 43 got no vGPU: no arbiter");

    cr_assert_eq(qsl_record_remove(state, 42), 0);
    cr_assert_eq(qsl_record_read(state, 42, &back, err), -ENOENT);
    cr_assert_eq(qsl_record_remove(state, 42), 0, "a missing file is not an error");
    free(state);
    free(dir);
}

Test(slurm_record, a_file_others_could_have_written_is_not_trusted)
{
    char *dir = qt_tmpdir();
    char path[512], err[QSL_ERR_LEN];
    qsl_record_t rec;
    snprintf(path, sizeof path, "%s/7", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("vgpu=vg-1\nsecret=x\n", f);
    fclose(f);
    chmod(path, 0644);
    cr_assert_eq(qsl_record_read(dir, 7, &rec, err), -EPERM);
    cr_assert(strstr(err, "not trusted"), "%s", err);
    chmod(path, 0600);
    cr_assert_eq(qsl_record_read(dir, 7, &rec, err), 0, "%s", err);
    cr_assert_str_eq(rec.vgpu, "vg-1");

    /* a symbolic link is not followed */
    char link[512];
    snprintf(link, sizeof link, "%s/8", dir);
    cr_assert_eq(symlink(path, link), 0);
    cr_assert_eq(qsl_record_read(dir, 8, &rec, err), -ELOOP);

    /* a file naming nothing is an error, not an empty record */
    snprintf(path, sizeof path, "%s/9", dir);
    f = fopen(path, "w");
    fclose(f);
    chmod(path, 0600);
    cr_assert_eq(qsl_record_read(dir, 9, &rec, err), -EPROTO);
    free(dir);
}

static const char *preload(const char *mine, const char *user)
{
    static char out[512];
    qsl_record_t rec = {0};
    snprintf(rec.preload, sizeof rec.preload, "%s", mine);
    cr_assert_eq(qsl_record_preload(&rec, user, out, sizeof out), 0);
    return out;
}

Test(slurm_record, the_task_keeps_its_ld_preload_with_the_shim_last)
{
    cr_assert_str_eq(preload("/q/libqshim.so", NULL), "/q/libqshim.so");
    cr_assert_str_eq(preload("/q/libqshim.so", ""), "/q/libqshim.so");
    cr_assert_str_eq(preload("/q/libqshim.so", "/u/a.so"), "/u/a.so:/q/libqshim.so");
    cr_assert_str_eq(preload("/q/libqshim.so", "/u/a.so /u/b.so"), "/u/a.so:/u/b.so:/q/libqshim.so",
                     "spaces separate too");
    cr_assert_str_eq(preload("/q/libqshim.so", "/u/a.so:/q/libqshim.so"), "/u/a.so:/q/libqshim.so",
                     "the shim is not listed twice");
    /* a sanitizer runtime qgpuctl put first stays first */
    cr_assert_str_eq(preload("/asan.so:/q/libqshim.so", "/u/a.so"),
                     "/asan.so:/u/a.so:/q/libqshim.so");
    cr_assert_str_eq(preload("/asan.so:/q/libqshim.so", "/asan.so:/u/a.so"),
                     "/asan.so:/u/a.so:/q/libqshim.so");
}

Test(slurm_record, an_ld_preload_too_long_is_refused_not_cut)
{
    qsl_record_t rec = {0};
    char out[32];
    snprintf(rec.preload, sizeof rec.preload, "/q/libqshim.so");
    cr_assert_eq(qsl_record_preload(&rec, "/a/very/long/user/library.so", out, sizeof out),
                 -ENAMETOOLONG);
}

Test(slurm_record, one_line_replaces_control_characters)
{
    char s[] = "first\nsecond\r\tthird";
    qsl_one_line(s);
    cr_assert_str_eq(s, "first second  third");
}
