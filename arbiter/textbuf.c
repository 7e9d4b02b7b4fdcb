/* textbuf.c - growable text buffer with sticky errors. One thread at a time. */
#include "arbiter/textbuf.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for n more bytes and a NUL. */
static bool reserve(qa_buf_t *b, size_t n)
{
    if (b->failed)
        return false;
    if (b->len + n + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (!data) {
        b->failed = true;
        return false;
    }
    b->data = data;
    b->cap = cap;
    return true;
}

void qa_buf_init(qa_buf_t *b, size_t hint)
{
    memset(b, 0, sizeof *b);
    if (reserve(b, hint))
        b->data[0] = '\0';
}

void qa_buf_add(qa_buf_t *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void qa_buf_puts(qa_buf_t *b, const char *s)
{
    qa_buf_add(b, s, strlen(s));
}

void qa_buf_printf(qa_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    /* Most appends are short: try the room there is first, grow only when it is short. */
    size_t room = b->failed || !b->data ? 0 : b->cap - b->len;
    va_start(ap, fmt);
    int n = room ? vsnprintf(b->data + b->len, room, fmt, ap) : -1;
    va_end(ap);
    if (n >= 0 && (size_t)n < room) {
        b->len += (size_t)n;
        return;
    }
    if (n < 0) {
        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
    }
    if (n < 0 || !reserve(b, (size_t)n)) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void qa_buf_json_string(qa_buf_t *b, const char *s)
{
    qa_buf_add(b, "\"", 1);
    for (const char *run = s;; s++) {
        unsigned char c = (unsigned char)*s;
        if (c && c != '"' && c != '\\' && c >= 0x20 && c < 0x7f)
            continue;
        qa_buf_add(b, run, (size_t)(s - run));
        if (!c)
            break;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            qa_buf_add(b, esc, 2);
        } else if (c < 0x20) {
            qa_buf_printf(b, "\\u%04x", c);
        } else {
            qa_buf_add(b, "?", 1);
        }
        run = s + 1;
    }
    qa_buf_add(b, "\"", 1);
}

void qa_buf_json_real(qa_buf_t *b, double x)
{
    char num[32];
    snprintf(num, sizeof num, "%.6g", isfinite(x) ? x : 0.0);
    qa_buf_puts(b, num);
    if (!strpbrk(num, ".e"))
        qa_buf_add(b, ".0", 2);
}

int qa_buf_take(qa_buf_t *b, char **out, size_t *len)
{
    if (b->failed || !b->data) {
        qa_buf_free(b);
        return -ENOMEM;
    }
    *out = b->data;
    *len = b->len;
    memset(b, 0, sizeof *b);
    return 0;
}

void qa_buf_free(qa_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}
