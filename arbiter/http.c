/* http.c - libmicrohttpd server, routes, and the hand-over of views from the loop.
 * Threads: see http.h. */
#include "arbiter/http.h"

#include "arbiter/api.h"
#include "arbiter/assets.h"
#include "arbiter/history.h"
#include "arbiter/prometheus.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000ull
#define VIEW_GAP_NS (20 * MS) /* the loop builds at most one view per this */
#define VIEW_WAIT_MS 1000     /* a request waits this long for a fresh view */
#define STALE_NS (5000 * MS)  /* past this, an old view is not served: 503 */
#define HISTORY_STEP_NS (1000 * MS)
#define HISTORY_REUSE_NS (500 * MS) /* the history takes a view this young as it is */
#define THREADS 2                   /* libmicrohttpd's pool: rendering is quick, views shared */
#define MAX_CONNECTIONS 512         /* slow clients cost a descriptor each, never a thread */
#define IDLE_TIMEOUT_S 15           /* a connection silent this long is closed */
#define REQUEST_MEMORY (16 * 1024)  /* request line and headers: more is refused (431) */
#define NICE 10                     /* the HTTP side's threads yield the CPU to the loop */

struct qa_http {
    struct MHD_Daemon *daemon; /* owned */
    int listen_fd;             /* owned until handed to the daemon (which closes it), then -1 */
    char address[80];          /* "ADDR:PORT" as served */
    bool loopback;             /* bound to a loopback address: the Host header is checked */
    const qa_log_t *log;       /* borrowed */
    char chartjs[256];         /* the Chart.js file to serve, "" to search QA_HTTP_CHARTJS */
    /* loop side */
    qa_loop_t *loop;          /* borrowed */
    qa_http_view_fn *build;   /* makes views */
    void *arg;                /* for build */
    int efd;                  /* owned eventfd: HTTP threads ask, the loop reads */
    qa_timer_t later;         /* builds a view once VIEW_GAP_NS since the last has passed */
    uint64_t built_ns;        /* when the loop built the last view */
    bool build_failed_logged; /* "out of memory for a view" said once */
    /* shared, under lock */
    pthread_mutex_t lock;
    pthread_cond_t fresh; /* broadcast when a view is published or we stop */
    qa_view_t *view;      /* the latest view, one reference; NULL before the first */
    uint64_t asks;        /* views asked for, numbered; a view answers those up to its seq */
    bool stopping;        /* qa_http_destroy runs: nobody waits any more */
    /* history, under history_lock */
    pthread_mutex_t history_lock;
    qa_history_t *history; /* owned */
    pthread_t history_thread;
    bool history_started; /* history_thread runs */
};

/* ---- the loop side ------------------------------------------------------------------ */

/* Builds a view of now and publishes it: it answers every ask made before. */
static void publish(qa_http_t *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t answers = self->asks;
    pthread_mutex_unlock(&self->lock);
    qa_view_t *v = self->build(self->arg);
    self->built_ns = qa_now_ns();
    if (!v) {
        if (!self->build_failed_logged)
            qa_log(self->log, QA_ERROR, "http: out of memory for a view of the arbiter");
        self->build_failed_logged = true;
        return;
    }
    v->seq = answers;
    pthread_mutex_lock(&self->lock);
    qa_view_t *old = self->view;
    self->view = v;
    pthread_cond_broadcast(&self->fresh);
    pthread_mutex_unlock(&self->lock);
    qa_view_unref(&old);
}

static void on_later(void *arg)
{
    publish(arg);
}

/* The eventfd: someone waits for a view. Built now, or when VIEW_GAP_NS has passed since
 * the last, so that however many ask, the loop spends a bounded share of its time. */
static void on_ask(void *arg)
{
    qa_http_t *self = arg;
    uint64_t n;
    if (read(self->efd, &n, sizeof n) != (ssize_t)sizeof n)
        return;
    if (qa_timer_running(&self->later))
        return; /* a build is due: it answers this ask too */
    uint64_t now = qa_now_ns(), next = self->built_ns + VIEW_GAP_NS;
    if (self->built_ns == 0 || now >= next)
        publish(self);
    else if (qa_timer_start(self->loop, &self->later, next, on_later, self) < 0)
        publish(self); /* no room for the timer: answer now rather than never */
}

/* ---- the request side: views -------------------------------------------------------- */

static void deadline_in(struct timespec *ts, uint64_t ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    uint64_t t = (uint64_t)ts->tv_nsec + ns;
    ts->tv_sec += (time_t)(t / 1000000000u);
    ts->tv_nsec = (long)(t % 1000000000u);
}

/* A view built after this call began, or, when the loop does not answer within
 * VIEW_WAIT_MS, the latest if it is younger than STALE_NS; NULL otherwise (or when
 * stopping), with *age_ns how old the latest one is (UINT64_MAX: none). The caller
 * unrefs the view. */
static qa_view_t *fresh_view(qa_http_t *self, uint64_t *age_ns)
{
    pthread_mutex_lock(&self->lock);
    uint64_t mine = ++self->asks;
    pthread_mutex_unlock(&self->lock);
    uint64_t one = 1;
    if (write(self->efd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full of asks the loop has not read: it will */
    }
    struct timespec until;
    deadline_in(&until, VIEW_WAIT_MS * MS);
    pthread_mutex_lock(&self->lock);
    while (!self->stopping && (!self->view || self->view->seq < mine)) {
        if (pthread_cond_timedwait(&self->fresh, &self->lock, &until) == ETIMEDOUT)
            break;
    }
    qa_view_t *v = self->view && !self->stopping ? qa_view_ref(self->view) : NULL;
    pthread_mutex_unlock(&self->lock);
    uint64_t now = qa_now_ns();
    *age_ns = v ? now - v->taken_ns : UINT64_MAX;
    if (v && v->seq<mine && * age_ns> STALE_NS)
        qa_view_unref(&v);
    return v;
}

/* Lowers the calling thread's priority (its own nice value, Linux's per-thread one):
 * rendering a thousand vGPUs takes milliseconds of CPU, which on a busy host must come
 * out of the HTTP side's share, not the loop's. Once per thread; a failure only costs
 * that preference. */
static void yield_to_the_loop(void)
{
    static __thread bool done;
    if (done)
        return;
    done = true;
    setpriority(PRIO_PROCESS, (id_t)gettid(), NICE);
}

/* ---- the history thread -------------------------------------------------------------- */

static void *history_main(void *arg)
{
    qa_http_t *self = arg;
    yield_to_the_loop();
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        deadline_in(&next, 0);
        next.tv_sec += 1; /* a sample a second, whatever the last one cost */
        pthread_mutex_lock(&self->lock);
        qa_view_t *v = NULL;
        if (!self->stopping && self->view && qa_now_ns() - self->view->taken_ns < HISTORY_REUSE_NS)
            v = qa_view_ref(self->view); /* one that a request had built just now */
        bool stop = self->stopping;
        pthread_mutex_unlock(&self->lock);
        if (stop)
            break;
        uint64_t age;
        if (!v)
            v = fresh_view(self, &age);
        if (v && v->taken_ns + HISTORY_STEP_NS / 2 > qa_now_ns()) {
            pthread_mutex_lock(&self->history_lock);
            if (qa_history_add(self->history, v) < 0)
                qa_log(self->log, QA_WARN, "http: out of memory for the utilisation history");
            pthread_mutex_unlock(&self->history_lock);
        }
        qa_view_unref(&v);
        pthread_mutex_lock(&self->lock);
        while (!self->stopping &&
               pthread_cond_timedwait(&self->fresh, &self->lock, &next) != ETIMEDOUT) {
        }
        stop = self->stopping;
        pthread_mutex_unlock(&self->lock);
        if (stop)
            break;
    }
    return NULL;
}

/* ---- responses ----------------------------------------------------------------------- */

/* Queues a response of len bytes of body (taken when must_free, else static) and
 * frees the response object. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             void *body, size_t len, bool must_free, bool no_store)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (no_store)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    if (strncmp(type, "text/html", 9) == 0)
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                "frame-ancestors 'none'");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* A plain-text reply of one line. */
static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
    char *body = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&body, fmt, ap);
    va_end(ap);
    if (n < 0)
        return MHD_NO;
    return reply(c, status, "text/plain; charset=utf-8", body, (size_t)n, true, true);
}

/* A JSON {"error": msg} reply. */
static enum MHD_Result json_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    char *body;
    size_t len;
    if (qa_api_error(msg, &body, &len) < 0)
        return MHD_NO;
    return reply(c, status, "application/json", body, len, true, true);
}

/* The view for a request, or a 503 queued (*rc) when the loop does not answer. */
static qa_view_t *view_or_503(qa_http_t *self, struct MHD_Connection *c, bool json,
                              enum MHD_Result *rc)
{
    uint64_t age;
    qa_view_t *v = fresh_view(self, &age);
    if (v)
        return v;
    char msg[160];
    if (age == UINT64_MAX)
        snprintf(msg, sizeof msg, "the arbiter's event loop did not answer within %d ms",
                 VIEW_WAIT_MS);
    else
        snprintf(msg, sizeof msg, "the arbiter's event loop has not answered for %.1f s",
                 (double)age / 1e9);
    *rc = json ? json_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg)
               : text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "%s\n", msg);
    return NULL;
}

static enum MHD_Result serve_metrics(qa_http_t *self, struct MHD_Connection *c)
{
    enum MHD_Result rc = MHD_NO;
    qa_view_t *v = view_or_503(self, c, false, &rc);
    if (!v)
        return rc;
    char *body;
    size_t len;
    int r = qa_prom_render(v, &body, &len);
    qa_view_unref(&v);
    if (r < 0)
        return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    return reply(c, MHD_HTTP_OK, QA_PROM_CONTENT_TYPE, body, len, true, true);
}

static enum MHD_Result serve_history(qa_http_t *self, struct MHD_Connection *c)
{
    const char *since_text = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
    uint64_t since = 0;
    if (since_text) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(since_text, &end, 10);
        if (errno || end == since_text || *end || since_text[0] == '-')
            return json_error(c, MHD_HTTP_BAD_REQUEST,
                              "since must be a sample number (a previous answer's \"last\")");
        since = v;
    }
    char *body;
    size_t len;
    pthread_mutex_lock(&self->history_lock);
    int r = qa_history_render(self->history, since, &body, &len);
    pthread_mutex_unlock(&self->history_lock);
    if (r < 0)
        return json_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return reply(c, MHD_HTTP_OK, "application/json", body, len, true, true);
}

static enum MHD_Result serve_api(qa_http_t *self, struct MHD_Connection *c, const char *url)
{
    if (strcmp(url, "/api/v1/history") == 0)
        return serve_history(self, c);
    enum MHD_Result rc = MHD_NO;
    qa_view_t *v = view_or_503(self, c, true, &rc);
    if (!v)
        return rc;
    char *body;
    size_t len;
    int r = qa_api_render(v, url, &body, &len);
    qa_view_unref(&v);
    if (r == -ENOENT) {
        char msg[200];
        if (strncmp(url, "/api/v1/vgpus/", 14) == 0)
            snprintf(msg, sizeof msg, "there is no vGPU '%.64s'", url + 14);
        else
            snprintf(msg, sizeof msg,
                     "no such document: %.64s (see /api/v1/gpus, /api/v1/vgpus, "
                     "/api/v1/vgpus/ID, /api/v1/stats)",
                     url);
        return json_error(c, MHD_HTTP_NOT_FOUND, msg);
    }
    if (r < 0)
        return json_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return reply(c, MHD_HTTP_OK, "application/json", body, len, true, true);
}

/* Debian's Chart.js, read from disk at each request (the page asks once): installing
 * libjs-chart.js while the arbiter runs is enough. */
static enum MHD_Result serve_chartjs(qa_http_t *self, struct MHD_Connection *c)
{
    static const char *const candidates[] = {QA_HTTP_CHARTJS};
    const char *env = getenv("QVGPU_CHARTJS");
    const char *only = self->chartjs[0] ? self->chartjs : env && env[0] ? env : NULL;
    int fd = -1;
    for (size_t i = 0; fd < 0 && i < (only ? 1 : sizeof candidates / sizeof candidates[0]); i++)
        fd = open(only ? only : candidates[i], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return text(c, MHD_HTTP_NOT_FOUND,
                    "// Chart.js is not installed: on Debian, apt-get install libjs-chart.js "
                    "(looked for %s)\n",
                    only ? only : "/usr/share/javascript/chart.js/chart.umd.js or chart.min.js");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/javascript; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "max-age=3600");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* Whether host (the Host header) names this machine's loopback: a page on another site
 * that makes a browser resolve its own name to 127.0.0.1 (DNS rebinding) would send its
 * own name, and must not read what the arbiter shows. */
static bool loopback_host(const char *host)
{
    if (!host)
        return true; /* HTTP/1.0 without Host: no browser sends that */
    char name[128];
    size_t n = strlen(host);
    if (n >= sizeof name)
        return false;
    memcpy(name, host, n + 1);
    char *colon = name[0] == '[' ? strchr(name, ']') : strrchr(name, ':');
    if (name[0] == '[') {
        if (!colon)
            return false;
        colon[1] = '\0';
    } else if (colon) {
        *colon = '\0';
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, name, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return strcasecmp(name, "localhost") == 0 || strcasecmp(name, "[::1]") == 0 ||
           strcasecmp(name, "ip6-localhost") == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **state)
{
    (void)version;
    (void)upload;
    (void)state;
    qa_http_t *self = cls;
    yield_to_the_loop();
    /* Answered at the first call, which has the headers only: nothing here reads a body. */
    if (*upload_len) { /* a body that came with the headers: discarded */
        *upload_len = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                    "%.16s is not allowed: this server is read-only (GET, HEAD)\n", method);
    if (self->loopback &&
        !loopback_host(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)))
        return text(c, MHD_HTTP_FORBIDDEN,
                    "the arbiter listens on loopback only: use http://127.0.0.1 or localhost\n");
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(self, c);
    if (strncmp(url, "/api/", 5) == 0)
        return serve_api(self, c, url);
    if (strcmp(url, "/static/chart.js") == 0)
        return serve_chartjs(self, c);
    for (size_t i = 0; i < qa_nassets; i++) {
        if (strcmp(url, qa_assets[i].path) == 0)
            return reply(c, MHD_HTTP_OK, qa_assets[i].type, (void *)qa_assets[i].data,
                         qa_assets[i].len, false, true);
    }
    return text(c, MHD_HTTP_NOT_FOUND,
                "not found: %.64s (this server has /, /metrics and /api/v1/)\n", url);
}

static void on_mhd_log(void *arg, const char *fmt, va_list ap)
{
    qa_http_t *self = arg;
    char line[QP_ERR_LEN];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    qa_log(self->log, QA_DEBUG, "http: %s", line);
}

/* ---- start and stop ------------------------------------------------------------------ */

/* MAX_CONNECTIONS, but never more than an eighth of the descriptors: the arbiter keeps
 * three quarters of them free for libzmq, which aborts the process when it cannot accept
 * a connection for want of one (server.c, tenant_cap), and HTTP clients must not eat
 * into that margin. */
static unsigned connection_limit(void)
{
    struct rlimit rl;
    rlim_t eighth = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur / 8 : 128;
    return eighth < MAX_CONNECTIONS ? (unsigned)(eighth ? eighth : 1) : MAX_CONNECTIONS;
}

bool qa_http_available(void)
{
    return true;
}

int qa_http_parse_listen(const char *text, struct sockaddr_storage *sa, socklen_t *len,
                         char err[QP_ERR_LEN])
{
    char host[64];
    const char *colon = text[0] == '[' ? strstr(text, "]:") : strrchr(text, ':');
    const char *port = colon ? colon + (text[0] == '[' ? 2 : 1) : NULL;
    size_t hlen = colon ? (size_t)(colon - text) - (text[0] == '[') : 0;
    const char *hstart = text + (text[0] == '[');
    char *end;
    errno = 0;
    unsigned long p = port ? strtoul(port, &end, 10) : 0;
    if (!port || !*port || *end || errno || p > 65535 || port[0] == '-' || port[0] == '+' ||
        hlen == 0 || hlen >= sizeof host) {
        snprintf(err, QP_ERR_LEN,
                 "--http '%.64s' is not ADDR:PORT (e.g. 127.0.0.1:8080, [::1]:8080, or off)", text);
        return -EINVAL;
    }
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';
    memset(sa, 0, sizeof *sa);
    struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
    if (text[0] != '[' && inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)p);
        *len = sizeof *s4;
        return 0;
    }
    if (text[0] == '[' && inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)p);
        *len = sizeof *s6;
        return 0;
    }
    snprintf(err, QP_ERR_LEN,
             "--http '%.64s': '%s' is not a numeric IPv4 address or a bracketed IPv6 one "
             "(e.g. 127.0.0.1:8080, [::1]:8080)",
             text, host);
    return -EINVAL;
}

static bool is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* Makes the listening socket, so that a taken port is said plainly; fills address. */
static int listen_on(qa_http_t *self, const char *text, char *err)
{
    struct sockaddr_storage sa;
    socklen_t len;
    int rc = qa_http_parse_listen(text, &sa, &len, err);
    if (rc < 0)
        return rc;
    self->loopback = is_loopback(&sa);
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        rc = -errno;
        snprintf(err, QP_ERR_LEN, "cannot listen on %.64s for HTTP: %s%s", text, strerror(errno),
                 errno == EADDRINUSE ? " (use --http ADDR:PORT for another port, or --http off)"
                                     : "");
        if (fd >= 0)
            close(fd);
        return rc;
    }
    self->listen_fd = fd;
    char addr[INET6_ADDRSTRLEN];
    if (sa.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&sa;
        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
        snprintf(self->address, sizeof self->address, "%s:%u", addr, ntohs(s4->sin_port));
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
        snprintf(self->address, sizeof self->address, "[%s]:%u", addr, ntohs(s6->sin6_port));
    }
    return 0;
}

qa_http_t *qa_http_new(const qa_http_opts_t *opts, char err[QP_ERR_LEN])
{
    qa_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, QP_ERR_LEN, "out of memory");
        return NULL;
    }
    self->listen_fd = self->efd = -1;
    self->log = opts->log;
    self->loop = opts->loop;
    self->build = opts->view;
    self->arg = opts->arg;
    snprintf(self->chartjs, sizeof self->chartjs, "%s", opts->chartjs ? opts->chartjs : "");
    pthread_mutex_init(&self->lock, NULL);
    pthread_mutex_init(&self->history_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&self->fresh, &ca);
    pthread_condattr_destroy(&ca);
    if (listen_on(self, opts->listen, err) < 0)
        goto fail;
    if (!(self->history = qa_history_new()) ||
        (self->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot start the HTTP server: out of memory or descriptors");
        goto fail;
    }
    /* The daemon takes the socket and closes it when it stops. Should it fail to start,
     * whether it closed the socket is unknown: a descriptor leaked at a failed start is
     * better than a double close of one another thread may have reused. */
    int fd = self->listen_fd;
    self->listen_fd = -1;
    /* poll(), not epoll: with epoll, libmicrohttpd 0.9.75 does not notice that a client
     * holding a connection at the limit went away, and keeps its slot until the idle
     * timeout (test_arbiter_http: http_clients_never_take_the_descriptors_tenants_need).
     * poll() over at most 512 descriptors costs little. */
    self->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG |
            (self->address[0] == '[' ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, on_request, self, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, self,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)THREADS,
        MHD_OPTION_CONNECTION_LIMIT, connection_limit(), MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)REQUEST_MEMORY,
        MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_END);
    if (!self->daemon) {
        snprintf(err, QP_ERR_LEN, "cannot start the HTTP server on %s (libmicrohttpd failed)",
                 self->address);
        goto fail;
    }
    if (pthread_create(&self->history_thread, NULL, history_main, self) != 0) {
        snprintf(err, QP_ERR_LEN, "cannot start the HTTP server: no thread for the history");
        goto fail;
    }
    self->history_started = true;
    /* Last: a failure before leaves the loop watching nothing of ours. */
    if (qa_loop_add_fd(self->loop, self->efd, on_ask, self) < 0) {
        snprintf(err, QP_ERR_LEN, "cannot start the HTTP server: the event loop is full");
        goto fail;
    }
    return self;
fail:
    qa_http_destroy(&self);
    return NULL;
}

void qa_http_destroy(qa_http_t **self_p)
{
    qa_http_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    pthread_cond_broadcast(&self->fresh);
    pthread_mutex_unlock(&self->lock);
    if (self->history_started)
        pthread_join(self->history_thread, NULL);
    if (self->daemon)
        MHD_stop_daemon(self->daemon); /* joins its threads; requests waiting saw stopping */
    if (self->listen_fd >= 0)
        close(self->listen_fd); /* not handed to a daemon yet */
    if (self->loop)
        qa_timer_stop(self->loop, &self->later);
    if (self->efd >= 0)
        close(self->efd);
    qa_view_unref(&self->view);
    qa_history_destroy(&self->history);
    pthread_cond_destroy(&self->fresh);
    pthread_mutex_destroy(&self->history_lock);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

const char *qa_http_address(const qa_http_t *self)
{
    return self->address;
}
