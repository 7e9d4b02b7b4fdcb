/* http_off.c - qarbiter's HTTP side when it is built without libmicrohttpd (make HTTP=0,
 * or no libmicrohttpd-dev): linked instead of http.c, it serves nothing and every call
 * says why in one line (http.h). Single-threaded. */
#include "arbiter/http.h"

#include <errno.h>
#include <stdio.h>

#define NOT_BUILT                                                                                  \
    "this qarbiter was built without HTTP (libmicrohttpd-dev was missing): only --http off; "      \
    "install it and rebuild for the dashboard, /metrics and /api/v1"

bool qa_http_available(void)
{
    return false;
}

int qa_http_parse_listen(const char *text, struct sockaddr_storage *sa, socklen_t *len,
                         char err[QP_ERR_LEN])
{
    (void)sa, (void)len;
    snprintf(err, QP_ERR_LEN, "--http %.40s: %s", text, NOT_BUILT);
    return -ENOTSUP;
}

qa_http_t *qa_http_new(const qa_http_opts_t *opts, char err[QP_ERR_LEN])
{
    snprintf(err, QP_ERR_LEN, "--http %.40s: %s", opts->listen, NOT_BUILT);
    return NULL;
}

void qa_http_destroy(qa_http_t **self_p)
{
    *self_p = NULL; /* qa_http_new never made one */
}

const char *qa_http_address(const qa_http_t *self)
{
    (void)self;
    return "";
}
