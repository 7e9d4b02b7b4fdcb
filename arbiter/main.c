/* main.c - qarbiter: options, configuration, then the server until SIGTERM/SIGINT.
 * Single-threaded until the server starts its helpers. */
#include "arbiter/config.h"
#include "arbiter/log.h"
#include "arbiter/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: qarbiter [--socket-dir DIR] [--state-dir DIR] [--config FILE]\n"
    "  --socket-dir DIR  where admin.sock and tenant.sock are made (default /run/qvgpu)\n"
    "  --state-dir DIR   where vGPUs persist (default /var/lib/qvgpu)\n"
    "  --config FILE     INI settings and custom profiles (see README, Configuration)\n"
    "Runs in the foreground and logs to stderr until SIGTERM or SIGINT.\n";

int main(int argc, char **argv)
{
    const char *socket_dir = "/run/qvgpu", *state_dir = "/var/lib/qvgpu", *config = NULL;
    for (int i = 1; i < argc; i++) {
        const char **dst = NULL;
        if (strcmp(argv[i], "--socket-dir") == 0)
            dst = &socket_dir;
        else if (strcmp(argv[i], "--state-dir") == 0)
            dst = &state_dir;
        else if (strcmp(argv[i], "--config") == 0)
            dst = &config;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            puts("qarbiter " QA_VERSION);
            return 0;
        } else {
            fprintf(stderr, "qarbiter: unknown option '%s' (qarbiter --help lists them)\n",
                    argv[i]);
            return 2;
        }
        if (i + 1 >= argc || argv[i + 1][0] == '\0') {
            fprintf(stderr, "qarbiter: %s needs a value (qarbiter --help)\n", argv[i]);
            return 2;
        }
        *dst = argv[++i];
    }
    qa_config_t cfg;
    char err[QP_ERR_LEN];
    qa_config_defaults(&cfg);
    if (config && qa_config_load(&cfg, config, err) < 0) {
        fprintf(stderr, "qarbiter: %s\n", err);
        return 2;
    }
    qa_log_t log = {cfg.log_level, stderr};
    qa_server_opts_t opts = {socket_dir, state_dir, &cfg, &log};
    qa_server_t *srv = qa_server_new(&opts, err);
    if (!srv) {
        fprintf(stderr, "qarbiter: %s\n", err);
        return 1;
    }
    int rc = qa_server_run(srv);
    if (rc < 0)
        qa_log(&log, QA_ERROR, "the event loop failed: %s", strerror(-rc));
    qa_server_destroy(&srv);
    return rc < 0 ? 1 : 0;
}
