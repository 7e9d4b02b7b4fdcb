/* test_arbiter_dispatch.c - a message from its bytes to the handler of its kind: the
 * schema's and the session's checks before any handler runs, what a peer is answered
 * when they fail, what is counted, and the tables (arbiter/dispatch.c). */
#include "arbiter/admin.h"
#include "arbiter/compute.h"
#include "arbiter/dispatch.h"
#include "arbiter/migrate.h"
#include "arbiter/tenant.h"
#include "tests/handler_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

/* What the test's handlers saw. */
struct seen {
    int calls;
    qp_req_t kind;
    qa_peer_t *peer;
};

static void h_open(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    struct seen *s = self;
    s->calls++;
    s->kind = (qp_req_t)qp_request_kind(qp_msg_type(m));
    s->peer = p;
    p->session = true;
}

static void h_info(void *self, qa_peer_t *p, const qp_msg_t *m)
{
    struct seen *s = self;
    s->calls++;
    s->kind = (qp_req_t)qp_request_kind(qp_msg_type(m));
    s->peer = p;
}

static const qa_route_t table[] = {
    {QP_REQ_HELLO, QP_ADMIN, QA_CHECK_HELLO, h_open},
    {QP_REQ_INFO, QP_ADMIN, QA_CHECK_SESSION, h_info},
};

static qp_msg_t *info(const char *id)
{
    qp_msg_t *m = qp_new_request(QP_REQ_INFO);
    qp_msg_set_str(m, "vgpu", id);
    return m;
}

Test(qa_dispatch, a_request_reaches_the_handler_of_its_kind_once_the_peer_said_hello)
{
    qt_wire_t *w = qt_wire_new();
    struct seen s = {0};
    cr_assert_eq(qa_dispatch_add(w->dispatch, table, 2, &s), 0);
    qa_peer_t *p = qt_peer(QP_ADMIN, 42);
    p->last_seen = 0;

    qt_wire_request(w, p, info("vg-1"));
    cr_assert_eq(s.calls, 0, "no handler runs before a hello");
    cr_assert_str_eq(qt_code(qt_wire_last(w, p)), QP_E_NOSESSION);
    cr_assert_gt(p->last_seen, 0, "any message counts as a sign of life");

    qt_wire_request(w, p, qt_hello("admin", NULL, NULL, 0, 0));
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.kind, QP_REQ_HELLO);
    qt_wire_request(w, p, info("vg-1"));
    cr_assert_eq(s.calls, 2);
    cr_assert_eq(s.kind, QP_REQ_INFO);
    cr_assert_eq(s.peer, p);
    cr_assert_eq(qa_metrics_get(&w->metrics, QP_ADMIN, QP_REQ_INFO)->count, 2,
                 "counted under its kind, answered or not");
    cr_assert_eq(qa_metrics_get(&w->metrics, QP_ADMIN, QP_REQ_HELLO)->count, 1);
    free(p);
    qt_wire_destroy(&w);
}

Test(qa_dispatch, a_hello_of_another_version_or_role_is_refused_before_its_handler)
{
    qt_wire_t *w = qt_wire_new();
    struct seen s = {0};
    cr_assert_eq(qa_dispatch_add(w->dispatch, table, 2, &s), 0);
    qa_peer_t *p = qt_peer(QP_ADMIN, 42);
    qp_msg_t *old = qt_hello("admin", NULL, NULL, 0, 0);
    qp_msg_set_uint(old, "proto", QP_PROTO_VERSION + 1);
    qt_wire_request(w, p, old);
    const qp_msg_t *r = qt_wire_last(w, p);
    cr_assert_str_eq(qt_code(r), QP_E_PROTO);
    cr_assert(strstr(qt_text(r), "protocol version mismatch"), "%s",
              qt_text(r));
    qt_wire_request(w, p, qt_hello("tenant", "vg-1", "s", 1, 0));
    r = qt_wire_last(w, p);
    cr_assert_str_eq(qt_code(r), QP_E_AUTH);
    cr_assert_str_eq(qt_text(r), "role 'tenant' is not served on admin.sock");
    cr_assert_eq(s.calls, 0);
    cr_assert_not(p->session);
    free(p);
    qt_wire_destroy(&w);
}

Test(qa_dispatch, garbage_several_frames_and_the_other_endpoints_requests_are_refused_and_counted)
{
    qt_wire_t *w = qt_wire_new();
    struct seen s = {0};
    cr_assert_eq(qa_dispatch_add(w->dispatch, table, 2, &s), 0);
    qa_peer_t *p = qt_peer(QP_ADMIN, 42);
    qa_dispatch_message(w->dispatch, p, "\xc1junk", 5);
    cr_assert_str_eq(qt_code(qt_wire_last(w, p)), QP_E_PROTO);
    cr_assert(p->warned);
    qa_dispatch_message(w->dispatch, p, "\xc1more", 5);
    qa_dispatch_multipart(w->dispatch, p);
    const qp_msg_t *r = qt_wire_last(w, p);
    cr_assert_str_eq(qt_code(r), QP_E_PROTO);
    cr_assert(strstr(qt_text(r), "a message must be one frame"));
    const char *log = qt_wire_log(w);
    cr_assert(strstr(log, "malformed message on admin.sock from uid"), "%s", log);
    cr_assert_null(strstr(strstr(log, "malformed message") + 1, "malformed message"),
                   "logged once per connection:\n%s", log);

    qp_msg_t *hb = qp_new_hb(1, 2);
    qp_msg_set_uint(hb, "id", 9);
    qt_wire_request(w, p, hb);
    cr_assert_str_eq(qt_code(qt_wire_last(w, p)), QP_E_AUTH, "hb is tenant.sock's");
    cr_assert_eq(s.calls, 0);
    cr_assert_eq(qa_metrics_get(&w->metrics, QP_ADMIN, QA_KIND_MALFORMED)->count, 4);
    free(p);
    qt_wire_destroy(&w);
}

Test(qa_dispatch, a_table_that_clashes_or_serves_a_kind_on_the_wrong_endpoint_is_refused_whole)
{
    qt_wire_t *w = qt_wire_new();
    struct seen s = {0};
    static const qa_route_t wrong[] = {{QP_REQ_HB, QP_ADMIN, QA_CHECK_SESSION, h_info}};
    static const qa_route_t twice[] = {
        {QP_REQ_LIST, QP_ADMIN, QA_CHECK_SESSION, h_info},
        {QP_REQ_LIST, QP_ADMIN, QA_CHECK_SESSION, h_info},
    };
    cr_assert_eq(qa_dispatch_add(w->dispatch, wrong, 1, &s), -EINVAL);
    cr_assert_eq(qa_dispatch_add(w->dispatch, twice, 2, &s), -EEXIST);
    cr_assert_eq(qa_dispatch_add(w->dispatch, table, 2, &s), 0);
    cr_assert_eq(qa_dispatch_add(w->dispatch, table + 1, 1, &s), -EEXIST);
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_dispatch_check(w->dispatch, err), -ENOENT);
    cr_assert_str_eq(err, "'create' on admin.sock has no handler");
    /* LIST was not added with the clashing table */
    qa_peer_t *p = qt_peer(QP_ADMIN, 42);
    p->session = true;
    qt_wire_request(w, p, qp_new_request(QP_REQ_LIST));
    cr_assert_str_eq(qt_code(qt_wire_last(w, p)), QP_E_PROTO);
    cr_assert_eq(s.calls, 0);
    free(p);
    qt_wire_destroy(&w);
}

Test(qa_dispatch, the_arbiters_tables_serve_every_kind_the_schema_allows_once)
{
    qt_wire_t *w = qt_wire_new();
    int dummy;
    char err[QP_ERR_LEN];
    cr_assert_eq(qa_dispatch_add(w->dispatch, qa_admin_routes, qa_admin_nroutes, &dummy), 0);
    cr_assert_eq(qa_dispatch_add(w->dispatch, qa_tenant_routes, qa_tenant_nroutes, &dummy), 0);
    cr_assert_eq(qa_dispatch_add(w->dispatch, qa_compute_routes, qa_compute_nroutes, &dummy), 0);
    cr_assert_eq(qa_dispatch_add(w->dispatch, qa_migrate_routes, qa_migrate_nroutes, &dummy), 0);
    cr_assert_eq(qa_dispatch_check(w->dispatch, err), 0, "%s", err);
    qt_wire_destroy(&w);
}
