/* test_arbiter_reply.c - the handlers' reply path: messages encoded onto the peer's path,
 * one-line errors, dropped messages and failed encodings logged, sessions told to the
 * endpoint (arbiter/reply.c). */
#include "arbiter/reply.h"
#include "proto/schema.h"
#include "tests/handler_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

Test(qa_reply, a_message_reaches_its_peer_decoded_as_sent)
{
    qt_wire_t *w = qt_wire_new();
    qa_peer_t *p = qt_peer(QP_TENANT, 7), *other = qt_peer(QP_TENANT, 8);
    qp_msg_t *m = qp_msg_new("mem_reclaim");
    qp_msg_set_uint(m, "keep", 42);
    qa_reply_send(&w->reply, p, &m);
    cr_assert_null(m, "taken");
    const qp_msg_t *got = qt_wire_last(w, p);
    uint64_t keep;
    cr_assert_str_eq(qp_msg_type(got), "mem_reclaim");
    cr_assert_eq(qp_msg_get_uint(got, "keep", &keep), 0);
    cr_assert_eq(keep, 42);
    cr_assert_null(qt_wire_last(w, other));
    free(p);
    free(other);
    qt_wire_destroy(&w);
}

Test(qa_reply, an_error_is_one_line_with_its_code_and_id)
{
    qt_wire_t *w = qt_wire_new();
    qa_peer_t *p = qt_peer(QP_ADMIN, 7);
    qa_reply_error(&w->reply, p, 12, QP_E_NOTFOUND, "there is no vGPU '%s'", "vg-9");
    const qp_msg_t *got = qt_wire_last(w, p);
    cr_assert_str_eq(qt_code(got), QP_E_NOTFOUND);
    cr_assert_str_eq(qt_text(got), "there is no vGPU 'vg-9'");
    cr_assert_eq(qp_msg_id(got), 12);
    free(p);
    qt_wire_destroy(&w);
}

Test(qa_reply, a_message_a_peer_does_not_read_is_dropped_and_one_that_failed_to_build_logged)
{
    qt_wire_t *w = qt_wire_new();
    qa_peer_t *p = qt_peer(QP_TENANT, 4321);
    w->write_rc = -ENOBUFS;
    qp_msg_t *m = qp_msg_new("limits");
    qa_reply_send(&w->reply, p, &m);
    cr_assert_eq(w->nsent, 0);
    cr_assert(strstr(qt_wire_log(w), "a message to pid 4321 was dropped: it does not read"), "%s",
              qt_wire_log(w));
    w->write_rc = 0;
    qp_msg_t *none = NULL; /* a builder out of memory */
    qa_reply_send(&w->reply, p, &none);
    cr_assert_eq(w->nsent, 0);
    cr_assert(strstr(qt_wire_log(w), "cannot encode a reply: Cannot allocate memory"), "%s",
              qt_wire_log(w));
    free(p);
    qt_wire_destroy(&w);
}

Test(qa_reply, a_session_change_sets_the_peer_and_tells_the_endpoint)
{
    qt_wire_t *w = qt_wire_new();
    qa_peer_t *p = qt_peer(QP_TENANT, 7);
    qa_reply_set_session(&w->reply, p, true);
    cr_assert(p->session);
    qa_reply_set_session(&w->reply, p, false);
    cr_assert_not(p->session);
    cr_assert_eq(w->sessions, 2);
    cr_assert(qa_reply_may_warn(&w->reply, p));
    free(p);
    qt_wire_destroy(&w);
}
