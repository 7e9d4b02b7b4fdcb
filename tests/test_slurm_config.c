/* test_slurm_config.c - the plugin's plugstack.conf arguments: defaults, each key, and the
 * one-line refusals an administrator sees in the logs. */
#include "slurm/config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int parse(qsl_config_t *cfg, char err[QSL_ERR_LEN], const char *words)
{
    char buf[1024], *av[16];
    int ac = 0;
    snprintf(buf, sizeof buf, "%s", words);
    for (char *tok = strtok(buf, " "); tok && ac < 16; tok = strtok(NULL, " "))
        av[ac++] = tok;
    return qsl_config_parse(ac, av, cfg, err);
}

Test(slurm_config, no_arguments_give_the_documented_defaults)
{
    qsl_config_t cfg;
    char err[QSL_ERR_LEN];
    cr_assert_eq(qsl_config_parse(0, NULL, &cfg, err), 0);
    cr_assert_str_eq(cfg.socket_dir, "/run/qvgpu");
    cr_assert_str_eq(cfg.tenant_dir, "");
    cr_assert_str_eq(cfg.state_dir, "/run/qvgpu-slurm");
    cr_assert_str_eq(cfg.qgpuctl, QSL_DEFAULT_QGPUCTL);
    cr_assert(strstr(cfg.qgpuctl, "/bin/qgpuctl"));
    cr_assert_str_eq(cfg.profiles, "");
    cr_assert_eq(cfg.timeout_ms, 10000);
}

Test(slurm_config, every_key_is_taken)
{
    qsl_config_t cfg;
    char err[QSL_ERR_LEN];
    cr_assert_eq(parse(&cfg, err,
                       "socket_dir=/s tenant_dir=/t qgpuctl=/usr/bin/qgpuctl state_dir=/st "
                       "profiles=big,small timeout=3"),
                 0, "%s", err);
    cr_assert_str_eq(cfg.socket_dir, "/s");
    cr_assert_str_eq(cfg.tenant_dir, "/t");
    cr_assert_str_eq(cfg.qgpuctl, "/usr/bin/qgpuctl");
    cr_assert_str_eq(cfg.state_dir, "/st");
    cr_assert_str_eq(cfg.profiles, "big,small");
    cr_assert_eq(cfg.timeout_ms, 3000);
}

Test(slurm_config, a_bad_argument_is_named_in_one_line)
{
    static const struct {
        const char *words, *says;
    } cases[] = {
        {"socket_dir=run/qvgpu", "socket_dir='run/qvgpu' is not an absolute path"},
        {"qgpuctl=", "qgpuctl='' is not an absolute path"},
        {"timeout=0", "timeout='0' is not a number of seconds"},
        {"timeout=5s", "timeout='5s'"},
        {"timeout=99999999999", "timeout='99999999999'"},
        {"profiles=a,,b", "profiles='a,,b' is not a list of names"},
        {"profiles=a,", "profiles='a,'"},
        {"profiles=", "profiles=''"},
        {"socketdir=/x", "unknown argument 'socketdir=/x'"},
        {"verbose", "argument 'verbose' is not KEY=VALUE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qsl_config_t cfg;
        char err[QSL_ERR_LEN] = "";
        cr_assert_eq(parse(&cfg, err, cases[i].words), -EINVAL, "%s accepted", cases[i].words);
        cr_assert(strstr(err, cases[i].says), "%s: %s", cases[i].words, err);
        cr_assert(strncmp(err, "spank_qvgpu: ", 13) == 0, "%s", err);
        cr_assert_null(strchr(err, '\n'));
    }
}
