/* http.h - qarbiter's read-only HTTP server (libmicrohttpd): the dashboard at /,
 * /metrics (Prometheus), the JSON API under /api/v1/ and the dashboard's history
 * (docs/http.md). Nothing it serves can change anything, and nothing shows a secret.
 *
 * The data path, so that an HTTP client never slows the arbiter's requests or leases:
 * HTTP threads never touch the loop's state. A request that needs figures asks the loop
 * for a view (view.h) by writing an eventfd the loop watches, and waits (at most 1 s) on
 * a condition variable; the loop copies its state into a new immutable view (O(vGPUs)
 * copies, tens of microseconds; at most one view per 20 ms however many ask, so HTTP
 * floods cost the loop at most a few percent), publishes it and goes on. Rendering
 * (text, JSON) happens on the HTTP threads. Waiting requests share one view: each sees
 * a view built after it arrived, so what /api/v1 shows is never older than what
 * qgpuctl saw before the request. A history thread takes a view a second for the
 * dashboard's ten-minute charts (history.h).
 *
 * Threads: qa_http_new and qa_http_destroy run on the loop thread, as do the loop's
 * callbacks here; libmicrohttpd's threads (two) and the history thread enter the
 * request side. The view, the ask counter and the stop flag are guarded by one mutex;
 * the history by its own. */
#ifndef QA_HTTP_H
#define QA_HTTP_H

#include "arbiter/log.h"
#include "arbiter/loop.h"
#include "arbiter/view.h"
#include "proto/msg.h"

#include <stdbool.h>
#include <sys/socket.h>

#define QA_HTTP_DEFAULT "127.0.0.1:8080"

typedef struct qa_http qa_http_t;

/* Builds a view of the arbiter now, on the loop thread; NULL when out of memory. */
typedef qa_view_t *qa_http_view_fn(void *arg);

typedef struct qa_http_opts {
    const char *listen;    /* "ADDR:PORT" (qa_http_parse_listen); port 0 picks a free one */
    qa_loop_t *loop;       /* the arbiter's loop, where views are built; borrowed */
    qa_http_view_fn *view; /* builds them */
    void *arg;             /* for view */
    const qa_log_t *log;   /* borrowed: must outlive the server */
    const char *chartjs;   /* Debian's Chart.js file to serve, or NULL: $QVGPU_CHARTJS, else
                            * the first of QA_HTTP_CHARTJS that exists when asked for */
} qa_http_opts_t;

/* Where Debian's libjs-chart.js puts the UMD build, newest layout first. */
#define QA_HTTP_CHARTJS                                                                            \
    "/usr/share/javascript/chart.js/chart.umd.js", "/usr/share/javascript/chart.js/chart.min.js",  \
        "/usr/share/javascript/chart.js/Chart.min.js"

/* Whether this qarbiter serves HTTP: false when it was built without libmicrohttpd
 * (make HTTP=0, or no libmicrohttpd-dev), where http_off.c stands in for http.c and every
 * function below fails saying so. */
bool qa_http_available(void);

/* Parses "ADDR:PORT" ("127.0.0.1:8080", "[::1]:9100", "0.0.0.0:8080"; ADDR numeric,
 * PORT 0..65535) into *sa / *len. Returns 0 or -EINVAL with err as one line. */
int qa_http_parse_listen(const char *text, struct sockaddr_storage *sa, socklen_t *len,
                         char err[QP_ERR_LEN]);

/* Listens on opts->listen and starts serving; registers its eventfd and timer on the
 * loop. Returns NULL with err as one line when the address is bad or taken, or threads
 * cannot start. */
qa_http_t *qa_http_new(const qa_http_opts_t *opts, char err[QP_ERR_LEN]);
/* Stops the threads (requests waiting for a view get 503), closes the socket, frees
 * *self_p and sets it to NULL. Loop thread. NULL is a no-op. */
void qa_http_destroy(qa_http_t **self_p);
/* The address served, with the port it really got: "127.0.0.1:8080", "[::1]:9100". */
const char *qa_http_address(const qa_http_t *self);

#endif
