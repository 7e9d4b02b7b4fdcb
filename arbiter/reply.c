/* reply.c - encoding replies and pushes onto a peer's path. Loop thread only. */
#include "arbiter/reply.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qa_reply_send(const qa_reply_t *self, qa_peer_t *p, qp_msg_t **msg)
{
    void *buf = NULL;
    size_t len;
    int rc = *msg ? qp_msg_encode(*msg, &qp_caps_reply, &buf, &len) : -ENOMEM;
    qp_msg_destroy(msg);
    if (rc < 0) {
        qa_log(self->log, QA_ERROR, "cannot encode a reply: %s", strerror(-rc));
        return;
    }
    if (self->write(self->arg, p, buf, len) < 0)
        qa_log(self->log, QA_DEBUG, "a message to pid %d was dropped: it does not read",
               (int)p->cred_pid);
    free(buf);
}

void qa_reply_error(const qa_reply_t *self, qa_peer_t *p, uint64_t id, const char *code,
                    const char *fmt, ...)
{
    char text[QP_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    qp_msg_t *m = qp_msg_new_error(id, code, "%s", text);
    qa_reply_send(self, p, &m);
}

void qa_reply_set_session(const qa_reply_t *self, qa_peer_t *p, bool open)
{
    p->session = open;
    self->session(self->arg, p, open);
}

bool qa_reply_may_warn(const qa_reply_t *self, const qa_peer_t *p)
{
    return self->may_warn(self->arg, p);
}
