/* main.c - qarbiter: options, configuration, then the server until SIGTERM/SIGINT.
 * Single-threaded until the server starts its helpers. */
#include "arbiter/ckpt.h"
#include "arbiter/ckpt_helper.h"
#include "arbiter/config.h"
#include "arbiter/http.h"
#include "arbiter/log.h"
#include "arbiter/notify.h"
#include "arbiter/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: qarbiter [--socket-dir DIR] [--tenant-dir DIR] [--state-dir DIR] [--config FILE]\n"
    "                [--http ADDR:PORT|off]\n"
    "  --socket-dir DIR  where admin.sock and tenant.sock are made (default /run/qvgpu)\n"
    "  --tenant-dir DIR  make tenant.sock here instead, alone: the directory to mount\n"
    "                    into containers (see docs/arbiter.md); also writes a CDI spec\n"
    "                    per vGPU (see docs/containers.md):\n"
    "    --cdi-dir DIR          where (default /var/run/cdi)\n"
    "    --cdi-bundle DIR       the shim bundle to mount (default PREFIX/lib/qvgpu/VERSION)\n"
    "    --cdi-driver-root DIR  mount the NVIDIA driver found under DIR too, instead of\n"
    "                           asking for NVIDIA's own CDI device\n"
    "    --cdi-preload          load the shim through /etc/ld.so.preload, not LD_PRELOAD\n"
    "  --state-dir DIR   where vGPUs persist (default /var/lib/qvgpu)\n"
    "  --config FILE     INI settings and custom profiles (see docs/configuration.md);\n"
    "                    default " QA_CONFIG_DEFAULT " if it exists; off: none\n"
    "  --print-config    print the settings in force (after --config) and exit\n"
    "  --http ADDR:PORT  serve the dashboard, /metrics and /api/v1 there, read-only\n"
    "                    (default 127.0.0.1:8080; off: none; see docs/http.md)\n"
    "Runs in the foreground and logs to stderr until SIGTERM or SIGINT; tells systemd\n"
    "(Type=notify) when both sockets are served.\n";

/* Raises the soft RLIMIT_NOFILE to the hard one: every tenant connection holds a
 * descriptor, and the usual soft 1024 would let a few hundred idle processes (or anyone
 * who can reach tenant.sock) exhaust them. A failure only costs capacity. */
static void raise_fd_limit(const qa_log_t *log)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == rl.rlim_max)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        qa_log(log, QA_WARN, "cannot raise the file descriptor limit from %llu to %llu: %s",
               (unsigned long long)old, (unsigned long long)rl.rlim_max, strerror(errno));
    else
        qa_log(log, QA_DEBUG, "file descriptor limit raised from %llu to %llu",
               (unsigned long long)old, (unsigned long long)rl.rlim_max);
}

int main(int argc, char **argv)
{
    /* Run by a qarbiter as its checkpoint helper (ckpt.h), not by a person. */
    if (argc == 3 && strcmp(argv[1], QA_CKPT_ARG) == 0 && strcmp(argv[2], "3") == 0)
        return qa_ckpt_helper_main(3);
    const char *socket_dir = "/run/qvgpu", *state_dir = "/var/lib/qvgpu", *config = NULL;
    const char *tenant_dir = NULL, *http = NULL;
    bool print_config = false;
    qa_cdi_opts_t cdi = {NULL, NULL, NULL, false};
    const char *cdi_option = NULL; /* one of them, to name when --tenant-dir is missing */
    for (int i = 1; i < argc; i++) {
        const char **dst = NULL;
        if (strncmp(argv[i], "--cdi-", 6) == 0)
            cdi_option = argv[i];
        if (strcmp(argv[i], "--cdi-preload") == 0) {
            cdi.preload = true;
            continue;
        } else if (strcmp(argv[i], "--print-config") == 0) {
            print_config = true;
            continue;
        } else if (strcmp(argv[i], "--cdi-dir") == 0)
            dst = &cdi.dir;
        else if (strcmp(argv[i], "--cdi-bundle") == 0)
            dst = &cdi.bundle;
        else if (strcmp(argv[i], "--cdi-driver-root") == 0)
            dst = &cdi.driver_root;
        else if (strcmp(argv[i], "--socket-dir") == 0)
            dst = &socket_dir;
        else if (strcmp(argv[i], "--tenant-dir") == 0)
            dst = &tenant_dir;
        else if (strcmp(argv[i], "--state-dir") == 0)
            dst = &state_dir;
        else if (strcmp(argv[i], "--config") == 0)
            dst = &config;
        else if (strcmp(argv[i], "--http") == 0)
            dst = &http;
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
    if (cdi_option && !tenant_dir) {
        fprintf(stderr,
                "qarbiter: %s needs --tenant-dir: CDI specs mount the tenant dir into "
                "containers, never the socket dir with admin.sock\n",
                cdi_option);
        return 2;
    }
    qa_config_t cfg;
    char err[QP_ERR_LEN];
    struct sockaddr_storage sa;
    socklen_t salen;
    if (http && strcmp(http, "off") != 0 && qa_http_parse_listen(http, &sa, &salen, err) < 0) {
        fprintf(stderr, "qarbiter: %s\n", err);
        return 2;
    }
    qa_config_defaults(&cfg);
    struct stat st;
    if (!config && stat(QA_CONFIG_DEFAULT, &st) == 0)
        config = QA_CONFIG_DEFAULT; /* the packaged one: a missing file is the defaults */
    else if (config && strcmp(config, "off") == 0)
        config = NULL;
    if (config && qa_config_load(&cfg, config, err) < 0) {
        fprintf(stderr, "qarbiter: %s\n", err);
        return 2;
    }
    if (print_config) {
        printf("# qarbiter %s: the settings in force, from %s\n\n", QA_VERSION,
               config ? config : "the built-in defaults");
        return qa_config_write(&cfg, stdout) < 0 ? 1 : 0;
    }
    qa_log_t log = {cfg.log_level, stderr};
    raise_fd_limit(&log);
    /* HTTP on the default address unless asked otherwise; only an address asked for
     * must be had (server.h) */
    const char *listen = !http ? QA_HTTP_DEFAULT : strcmp(http, "off") == 0 ? NULL : http;
    if (!http && !qa_http_available())
        listen = NULL; /* said once it runs: a start that fails says one line */
    qa_server_opts_t opts = {socket_dir, tenant_dir, &cdi,       state_dir,
                             &cfg,       &log,       listen,     http != NULL};
    qa_server_t *srv = qa_server_new(&opts, err);
    if (!srv) {
        fprintf(stderr, "qarbiter: %s\n", err);
        return 1;
    }
    qa_log(&log, QA_INFO, "qarbiter %s: settings from %s", QA_VERSION,
           config ? config : "the built-in defaults");
    if (!http && !qa_http_available())
        qa_log(&log, QA_INFO, "no HTTP: this qarbiter was built without libmicrohttpd (no "
                              "dashboard, /metrics or /api/v1)");
    char status[300];
    snprintf(status, sizeof status, "serving %s", socket_dir);
    qa_notify_ready(&log, status);
    int rc = qa_server_run(srv);
    qa_notify_stopping(&log);
    if (rc < 0)
        qa_log(&log, QA_ERROR, "the event loop failed: %s", strerror(-rc));
    qa_server_destroy(&srv);
    return rc < 0 ? 1 : 0;
}
