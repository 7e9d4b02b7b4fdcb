/* http_support.c - HTTP arbiter, raw HTTP client and JSON helpers for the tests.
 * Single-threaded (see http_support.h). */
#include "tests/http_support.h"

#include "arbiter/http.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int http_address_of(qt_arbiter_t *arb, char addr[64])
{
    /* logged before admin.sock appears, so it is there once the arbiter is up */
    const char *at = strstr(qt_proc_stderr(qt_arbiter_proc(arb)), "HTTP on http://");
    if (!at)
        return -ENOENT;
    at += strlen("HTTP on http://");
    size_t n = strcspn(at, "/ \n");
    if (n == 0 || n >= 64)
        return -EPROTO;
    memcpy(addr, at, n);
    addr[n] = '\0';
    return 0;
}

void http_require(void)
{
    if (!qa_http_available())
        cr_skip_test("qarbiter was built without HTTP (no libmicrohttpd-dev, or make HTTP=0): "
                     "nothing to test over HTTP");
}

qt_arbiter_t *http_arbiter(const char *gpus, const char *config, const char *const env[],
                           char addr[64])
{
    http_require();
    qt_sim_private(gpus);
    qt_arbiter_t *a = qt_arbiter_start_http(config, env, "127.0.0.1:0");
    cr_assert_not_null(a, "qarbiter did not start");
    cr_assert_eq(http_address_of(a, addr), 0, "no HTTP address in the arbiter's log:\n%s",
                 qt_proc_stderr(qt_arbiter_proc(a)));
    return a;
}

int http_connect(const char *addr)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host)
        return -EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Splits raw (the whole response) into r. */
static void parse(http_resp_t *r, char *raw, size_t n)
{
    char *end = strstr(raw, "\r\n\r\n");
    if (!end || sscanf(raw, "HTTP/1.%*d %d", &r->status) != 1) {
        r->status = -EPROTO;
        r->headers = raw;
        r->body = strdup("");
        return;
    }
    *end = '\0';
    r->headers = raw;
    size_t off = (size_t)(end + 4 - raw);
    r->len = n - off;
    r->body = malloc(r->len + 1);
    if (!r->body) {
        r->status = -ENOMEM;
        return;
    }
    memcpy(r->body, end + 4, r->len);
    r->body[r->len] = '\0';
}

http_resp_t http_raw(const char *addr, const void *raw, size_t len, int timeout_ms)
{
    http_resp_t r = {0};
    int fd = http_connect(addr);
    if (fd < 0) {
        r.status = fd;
        return r;
    }
    const char *p = raw;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0) {
            break; /* the server may answer and close before reading it all */
        }
        p += w;
        len -= (size_t)w;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        r.status = -ENOMEM;
        return r;
    }
    uint64_t until = qt_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint64_t now = qt_now_ns();
        if (now >= until) {
            r.status = -ETIMEDOUT;
            break;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, (int)((until - now) / 1000000u) + 1) <= 0)
            continue;
        if (n + 4096 > cap) {
            char *more = realloc(buf, cap * 2);
            if (!more) {
                r.status = -ENOMEM;
                break;
            }
            buf = more;
            cap *= 2;
        }
        ssize_t got = recv(fd, buf + n, cap - n - 1, 0);
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = '\0';
    if (r.status == -ETIMEDOUT || r.status == -ENOMEM) {
        free(buf);
        return r;
    }
    if (n == 0) {
        free(buf);
        r.status = -ECONNRESET;
        return r;
    }
    parse(&r, buf, n);
    return r;
}

http_resp_t http_get(const char *addr, const char *path, int timeout_ms)
{
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, addr);
    if (n < 0 || (size_t)n >= sizeof req)
        return (http_resp_t){.status = -ENAMETOOLONG};
    return http_raw(addr, req, (size_t)n, timeout_ms);
}

void http_resp_free(http_resp_t *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

char *http_header(const http_resp_t *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *next = strstr(line, "\r\n");
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t len = next ? (size_t)(next - v) : strlen(v);
            return strndup(v, len);
        }
        line = next ? next + 2 : NULL;
    }
    return NULL;
}

int http_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return -e;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

void need_tool(const char *path, const char *package)
{
    if (access(path, F_OK) == 0)
        return;
    if (access("/usr/bin/apt-get", X_OK) != 0)
        cr_skip_test("%s is missing and this machine has no apt-get to install %s", path,
                     package);
    cr_assert_fail("%s is missing: install Debian's %s (scripts/install-deps.sh)", path, package);
}

const char *chartjs_path(void)
{
    static const char *const candidates[] = {QA_HTTP_CHARTJS};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    }
    return NULL;
}

json_t *http_json(const http_resp_t *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body, r->len, 0, &e);
    cr_assert_not_null(j, "not JSON (%s): %.300s", e.text, r->body);
    return j;
}

json_t *ctl_json(const qt_arbiter_t *arb, const char *cmd, const char *arg)
{
    char *out = NULL, *err = NULL;
    int rc = qt_ctl(arb, &out, &err, "--json", cmd, arg, NULL);
    cr_assert_eq(rc, 0, "qgpuctl --json %s failed: %s", cmd, err);
    json_error_t e;
    json_t *j = json_loads(out, 0, &e);
    cr_assert_not_null(j, "qgpuctl printed no JSON (%s): %s", e.text, out);
    free(out);
    free(err);
    return j;
}

double prom_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *line = text; line && *line;) {
        if (strncmp(line, series, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    cr_assert_fail("no sample %s in:\n%.2000s", series, text);
    return 0;
}
