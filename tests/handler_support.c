/* handler_support.c - a recording reply path and small fixtures for handler tests. */
#include "tests/handler_support.h"

#include "proto/schema.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int w_write(void *arg, qa_peer_t *p, const void *buf, size_t len)
{
    qt_wire_t *w = arg;
    qp_msg_t *m = NULL;
    char err[QP_ERR_LEN];
    cr_assert_eq(qp_msg_decode(buf, len, &qp_caps_reply, &m, err), 0,
                 "the arbiter sent what does not decode: %s", err);
    if (w->write_rc < 0 || w->nsent == QT_WIRE_MAX) {
        qp_msg_destroy(&m);
        return w->write_rc < 0 ? w->write_rc : -ENOBUFS;
    }
    w->sent[w->nsent].peer = p;
    w->sent[w->nsent++].msg = m;
    return 0;
}

static void w_session(void *arg, qa_peer_t *p, bool open)
{
    qt_wire_t *w = arg;
    (void)p;
    (void)open;
    w->sessions++;
}

static bool w_may_warn(void *arg, const qa_peer_t *p)
{
    (void)arg;
    (void)p;
    return true;
}

qt_wire_t *qt_wire_new(void)
{
    qt_wire_t *w = calloc(1, sizeof *w);
    cr_assert_not_null(w);
    w->log = (qa_log_t){QA_DEBUG, tmpfile()};
    cr_assert_not_null(w->log.out);
    w->reply = (qa_reply_t){w_write, w_session, w_may_warn, w, &w->log};
    qa_metrics_init(&w->metrics);
    w->dispatch = qa_dispatch_new(&w->reply, &w->log, &w->metrics);
    cr_assert_not_null(w->dispatch);
    return w;
}

void qt_wire_clear(qt_wire_t *self)
{
    for (size_t i = 0; i < self->nsent; i++)
        qp_msg_destroy(&self->sent[i].msg);
    self->nsent = 0;
}

void qt_wire_destroy(qt_wire_t **self_p)
{
    qt_wire_t *w = *self_p;
    qt_wire_clear(w);
    qa_dispatch_destroy(&w->dispatch);
    fclose(w->log.out);
    free(w);
    *self_p = NULL;
}

void qt_wire_request(qt_wire_t *self, qa_peer_t *p, qp_msg_t *m)
{
    void *buf;
    size_t len;
    cr_assert_not_null(m);
    cr_assert_eq(qp_msg_encode(m, &qp_caps_request, &buf, &len), 0);
    qp_msg_destroy(&m);
    qa_dispatch_message(self->dispatch, p, buf, len);
    free(buf);
}

const qp_msg_t *qt_wire_last(const qt_wire_t *self, const qa_peer_t *p)
{
    for (size_t i = self->nsent; i > 0; i--) {
        if (self->sent[i - 1].peer == p)
            return self->sent[i - 1].msg;
    }
    return NULL;
}

size_t qt_wire_count(const qt_wire_t *self, const qa_peer_t *p, const char *t)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nsent; i++) {
        if ((!p || self->sent[i].peer == p) &&
            (!t || strcmp(qp_msg_type(self->sent[i].msg), t) == 0))
            n++;
    }
    return n;
}

const char *qt_wire_log(qt_wire_t *self)
{
    static char text[65536];
    fflush(self->log.out);
    size_t n = (size_t)ftell(self->log.out);
    rewind(self->log.out);
    n = fread(text, 1, n < sizeof text - 1 ? n : sizeof text - 1, self->log.out);
    text[n] = '\0';
    fseek(self->log.out, 0, SEEK_END);
    return text;
}

const char *qt_code(const qp_msg_t *m)
{
    const char *code = "";
    if (m && qp_msg_is_error(m))
        qp_msg_get_str(m, "code", &code);
    return code;
}

const char *qt_text(const qp_msg_t *m)
{
    const char *text = "";
    if (m && qp_msg_is_error(m))
        qp_msg_get_str(m, "msg", &text);
    return text;
}

qa_peer_t *qt_peer(qp_endpoint_t ep, pid_t pid)
{
    qa_peer_t *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    p->ep = ep;
    p->cred_uid = getuid();
    p->cred_pid = pid;
    p->last_seen = qa_now_ns();
    return p;
}

qp_msg_t *qt_hello(const char *role, const char *vgpu, const char *secret, pid_t pid,
                   uint64_t mem_used)
{
    if (strcmp(role, "admin") == 0)
        return qp_new_admin_hello("test/1");
    qp_msg_t *m = qp_new_tenant_hello("test/1", vgpu, secret ? secret : "", pid, mem_used);
    if (!secret)
        qp_msg_set_str(m, "secret", "");
    return m;
}

qa_host_t *qt_host(size_t ngpus, const qa_config_t *cfg)
{
    qa_gpu_desc_t g[4];
    cr_assert_leq(ngpus, 4);
    for (size_t i = 0; i < ngpus; i++) {
        g[i] = (qa_gpu_desc_t){(unsigned)i, "", "NVIDIA GeForce GTX 1080", 8192ull << 20, 20,
                               2560};
        char c = (char)('a' + i);
        snprintf(g[i].uuid, sizeof g[i].uuid, "GPU-%c%c%c%c", c, c, c, c);
    }
    qa_host_t *h = qa_host_new(g, ngpus, cfg);
    cr_assert_not_null(h);
    return h;
}

static void stop(void *arg)
{
    qa_loop_stop(arg);
}

void qt_loop_for(qa_loop_t *loop, unsigned ms)
{
    qa_timer_t t = {0};
    cr_assert_eq(qa_timer_start(loop, &t, qa_now_ns() + ms * 1000000ull, stop, loop), 0);
    cr_assert_eq(qa_loop_run(loop), 0);
    qa_timer_stop(loop, &t);
}
