/* http_support.h - what the HTTP tests share: an arbiter serving HTTP on a free loopback
 * port, a plain HTTP/1.1 client on raw sockets (so that tests can also send what no
 * library would), free ports for other servers, and JSON helpers. The client and
 * http_free_port use no Criterion (they return errors), so the benches use them too.
 * Test-only; one thread at a time per response. */
#ifndef QV_HTTP_SUPPORT_H
#define QV_HTTP_SUPPORT_H

#include "tests/ctl_support.h"

#include <jansson.h>
#include <stddef.h>

/* Skips the test when qarbiter was built without HTTP (no libmicrohttpd, or HTTP=0). A
 * Criterion .init for suites of HTTP tests; http_arbiter calls it too. */
void http_require(void);

/* A private simulated host with gpus and a qarbiter on it with config (may be NULL)
 * and env (may be NULL) serving HTTP on 127.0.0.1 at a port the kernel picks; addr
 * receives "127.0.0.1:PORT" from its log. Fails the test when it does not start. */
qt_arbiter_t *http_arbiter(const char *gpus, const char *config, const char *const env[],
                           char addr[64]);

/* The address (addr: "127.0.0.1:PORT") arb logged it serves HTTP on. Returns 0, or
 * -ENOENT when it logged none. */
int http_address_of(qt_arbiter_t *arb, char addr[64]);

/* A response. */
typedef struct http_resp {
    int status;    /* 200, 404, ...; negative errno when no response came (then the rest
                    * may be NULL) */
    char *headers; /* owned: the status line and headers, NUL-terminated */
    char *body;    /* owned: NUL-terminated */
    size_t len;    /* bytes of body */
} http_resp_t;

/* GET path from addr ("HOST:PORT") with Connection: close, within timeout_ms. */
http_resp_t http_get(const char *addr, const char *path, int timeout_ms);
/* Sends len bytes of raw as the whole request, then reads the response until the server
 * closes or timeout_ms pass. */
http_resp_t http_raw(const char *addr, const void *raw, size_t len, int timeout_ms);
void http_resp_free(http_resp_t *r);
/* The value of header name in r (case-insensitive), or NULL. Caller frees. */
char *http_header(const http_resp_t *r, const char *name);

/* A connected TCP socket to addr, or -errno. */
int http_connect(const char *addr);

/* A loopback port nothing listens on now (bound and released: another process may take
 * it before the caller does, which the kernel makes unlikely by not reusing it soon), or
 * -errno. */
int http_free_port(void);

/* Checks that path (a program or file of Debian package package) is there: a machine
 * with apt-get is one scripts/install-deps.sh sets up, and lacking it fails the test; a
 * machine without (a GPU host set up from ../shared/gpu) skips the test. */
void need_tool(const char *path, const char *package);
/* Where Debian's libjs-chart.js put Chart.js, or NULL. */
const char *chartjs_path(void);

/* r's body parsed as JSON; fails the test when it is not. The caller decrefs. */
json_t *http_json(const http_resp_t *r);
/* Runs qgpuctl --json CMD [ARG] against arb (arg may be NULL) and parses its output;
 * fails the test when it fails. The caller decrefs. */
json_t *ctl_json(const qt_arbiter_t *arb, const char *cmd, const char *arg);

/* The value of the Prometheus sample whose line starts with "name{labels}" (exactly) in
 * text; fails the test when there is none. */
double prom_value(const char *text, const char *series);

#endif
