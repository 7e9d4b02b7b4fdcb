/* spec.h - the value of `--vgpu`: a profile name, or memory=SIZE,share=PCT[,limit=PCT].
 * Checked on the submit side (syntax only: no arbiter is asked) and again on the compute
 * node, where the value arrives through the job's environment and is the user's input.
 * Pure. */
#ifndef QSL_SPEC_H
#define QSL_SPEC_H

#include <stdint.h>

#define QSL_ERR_LEN 256    /* every err buffer of slurm/ */
#define QSL_PROFILE_LEN 33 /* a profile name with its NUL (the arbiter's limit) */

/* Writes one line into err (cut at QSL_ERR_LEN, never overflowing). */
void qsl_say(char err[QSL_ERR_LEN], const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A parsed --vgpu value. */
typedef struct qsl_spec {
    char profile[QSL_PROFILE_LEN]; /* "Q2", or "" for the custom form */
    uint64_t memory_mb;            /* custom form: the quota */
    unsigned share;                /* custom form: percent, 1..100 */
    int has_limit;                 /* custom form: limit was given */
    unsigned limit;                /* percent, 0 = none; otherwise not below share */
} qsl_spec_t;

/* The options of `qgpuctl create` that make a spec. */
typedef struct qsl_args {
    const char *argv[7]; /* "--profile" P, or "--memory" M "--share" S ["--limit" L]; NULL */
    char num[3][24];     /* the numbers argv points to */
} qsl_args_t;

/* Parses text. A profile is Q1, Q2, Q4, Q8 or one of extra (a comma-separated list of
 * the arbiter's configured profiles, may be NULL). Returns 0, or -EINVAL with one line in
 * err that says what is wrong and what is accepted. */
int qsl_spec_parse(const char *text, const char *extra, qsl_spec_t *out, char err[QSL_ERR_LEN]);

/* Fills out with the create options for spec; out->argv points into spec and out. */
void qsl_spec_args(const qsl_spec_t *spec, qsl_args_t *out);

#endif
