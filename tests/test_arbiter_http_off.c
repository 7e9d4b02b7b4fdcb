/* test_arbiter_http_off.c - qarbiter's HTTP side as a machine without libmicrohttpd
 * builds it (arbiter/http_off.c, make HTTP=0): it serves nothing, and whoever asks for
 * HTTP is told why in one line and what to install. This binary links http_off.o in
 * http.c's place whatever the build (Makefile), so that the stand-in is tested on every
 * machine; the daemon built that way is test_arbiter_notify's build/minimal/qarbiter. */
#include "arbiter/http.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

/* What every refusal must tell an administrator: which address, that this build lacks
 * HTTP, what still works and how to get the rest; on one line, not cut short. */
static void assert_says_why(const char *err, const char *addr)
{
    char head[QP_ERR_LEN];
    snprintf(head, sizeof head, "--http %s: ", addr);
    cr_assert_eq(strncmp(err, head, strlen(head)), 0, "%s", err);
    cr_assert(strstr(err, "built without HTTP"), "%s", err);
    cr_assert(strstr(err, "only --http off"), "%s", err);
    cr_assert(strstr(err, "libmicrohttpd-dev"), "%s", err);
    cr_assert_null(strchr(err, '\n'), "one line: %s", err);
    size_t n = strlen(err);
    cr_assert_lt(n, QP_ERR_LEN - 1, "not cut by the buffer: %s", err);
    cr_assert_eq(strcmp(err + n - strlen("/api/v1"), "/api/v1"), 0, "%s", err);
}

Test(qa_http_off, says_it_serves_no_http)
{
    cr_assert_not(qa_http_available());
}

Test(qa_http_off, an_address_is_refused_with_what_to_install_even_a_valid_one)
{
    const char *addrs[] = {"127.0.0.1:8080", "[::1]:9100", "0.0.0.0:0", "not an address"};
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        struct sockaddr_storage sa;
        socklen_t len = 0;
        char err[QP_ERR_LEN] = "";
        cr_assert_eq(qa_http_parse_listen(addrs[i], &sa, &len, err), -ENOTSUP, "%s", addrs[i]);
        cr_assert_eq(len, 0, "nothing parsed for %s", addrs[i]);
        assert_says_why(err, addrs[i]);
    }
}

Test(qa_http_off, a_long_address_is_cut_and_the_advice_still_fits)
{
    char addr[600];
    memset(addr, '9', sizeof addr - 1);
    addr[sizeof addr - 1] = '\0';
    struct sockaddr_storage sa;
    socklen_t len = 0;
    char err[QP_ERR_LEN] = "";
    cr_assert_eq(qa_http_parse_listen(addr, &sa, &len, err), -ENOTSUP);
    assert_says_why(err, "9999999999999999999999999999999999999999"); /* its first 40 */
}

Test(qa_http_off, starting_a_server_fails_and_touches_no_loop)
{
    /* No loop at all: the stand-in must not register anything on one. */
    qa_http_opts_t o = {"127.0.0.1:0", NULL, NULL, NULL, NULL, NULL};
    char err[QP_ERR_LEN] = "";
    cr_assert_null(qa_http_new(&o, err));
    assert_says_why(err, "127.0.0.1:0");
}

Test(qa_http_off, destroying_the_server_it_never_made_is_a_no_op)
{
    qa_http_t *http = NULL;
    qa_http_destroy(&http);
    cr_assert_null(http);
    cr_assert_str_eq(qa_http_address(NULL), "");
}
