/* textbuf.h - a growable text buffer for responses rendered by hand (/metrics, the
 * utilisation history), where building a JSON tree would cost more than the figures.
 *
 * Errors stick: after a failed allocation every append is a no-op and qa_buf_take
 * reports -ENOMEM, so a renderer checks once at the end. One thread at a time. */
#ifndef QA_TEXTBUF_H
#define QA_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct qa_buf {
    char *data;  /* owned; NUL-terminated while len < cap */
    size_t len;  /* bytes written */
    size_t cap;  /* bytes allocated */
    bool failed; /* an allocation failed: the text is incomplete */
} qa_buf_t;

/* Starts an empty buffer with room for about hint bytes. */
void qa_buf_init(qa_buf_t *b, size_t hint);
/* Appends n bytes of s / a NUL-terminated string / printf output. */
void qa_buf_add(qa_buf_t *b, const char *s, size_t n);
void qa_buf_puts(qa_buf_t *b, const char *s);
void qa_buf_printf(qa_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the text over: *out (NUL-terminated, the caller frees) and *len. Returns 0, or
 * -ENOMEM (nothing handed over, the buffer freed) when an append failed. */
int qa_buf_take(qa_buf_t *b, char **out, size_t *len);
/* Frees what the buffer holds (after an error on the caller's side). */
void qa_buf_free(qa_buf_t *b);

#endif
