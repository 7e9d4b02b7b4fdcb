/* spec.c - parsing the value of --vgpu. Pure. */
#include "slurm/spec.h"

#include "proto/units.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qsl_say(char err[QSL_ERR_LEN], const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, QSL_ERR_LEN, fmt, ap);
    va_end(ap);
}

static const char accepted[] = "use Q1, Q2, Q4, Q8 or memory=SIZE,share=PCT[,limit=PCT]";

/* Is the name of len bytes at s one of the comma-separated names in list? */
static bool in_list(const char *list, const char *s, size_t len)
{
    while (list && *list) {
        size_t n = strcspn(list, ",");
        if (n == len && memcmp(list, s, len) == 0)
            return true;
        list += n + (list[n] == ',');
    }
    return false;
}

/* A percentage from min to 100 ("30" or "30%"). */
static int percent(const char *key, const char *s, size_t len, unsigned min, unsigned *out,
                   char err[QSL_ERR_LEN])
{
    unsigned v = 0;
    size_t i = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9' && v <= 100; i++)
        v = v * 10 + (unsigned)(s[i] - '0');
    if (i < len && s[i] == '%')
        i++;
    if (i == 0 || i != len || v < min || v > 100) {
        qsl_say(err, "--vgpu: %s '%.*s' is not a percentage from %u to 100", key,
                (int)(len > 32 ? 32 : len), s, min);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* The custom form, key=value pairs separated by commas. */
static int parse_custom(const char *text, qsl_spec_t *out, char err[QSL_ERR_LEN])
{
    bool seen[3] = {false, false, false};
    static const char *const keys[3] = {"memory", "share", "limit"};
    const char *p = text;
    for (;;) {
        size_t n = strcspn(p, ",");
        const char *eq = memchr(p, '=', n);
        if (!eq) {
            qsl_say(err, "--vgpu: '%.*s' is not KEY=VALUE (%s)", (int)(n > 32 ? 32 : n), p,
                    accepted);
            return -EINVAL;
        }
        size_t klen = (size_t)(eq - p);
        const char *val = eq + 1;
        size_t vlen = n - klen - 1;
        int k = 0;
        while (k < 3 && !(strlen(keys[k]) == klen && memcmp(keys[k], p, klen) == 0))
            k++;
        if (k == 3) {
            qsl_say(err, "--vgpu: unknown key '%.*s' (%s)", (int)(klen > 32 ? 32 : klen), p,
                    accepted);
            return -EINVAL;
        }
        if (seen[k]) {
            qsl_say(err, "--vgpu: %s is given twice", keys[k]);
            return -EINVAL;
        }
        seen[k] = true;
        int rc;
        if (k == 0) {
            char size[64], why[QP_ERR_LEN];
            if (vlen >= sizeof size) {
                qsl_say(err, "--vgpu: memory '%.32s...' is too long", val);
                return -EINVAL;
            }
            memcpy(size, val, vlen);
            size[vlen] = '\0';
            rc = qp_parse_size_mb(size, &out->memory_mb, why);
            if (rc < 0)
                qsl_say(err, "--vgpu: memory: %s", why);
        } else if (k == 1) {
            rc = percent("share", val, vlen, 1, &out->share, err);
        } else {
            rc = percent("limit", val, vlen, 0, &out->limit, err);
            out->has_limit = 1;
        }
        if (rc < 0)
            return rc;
        if (p[n] == '\0')
            break;
        p += n + 1;
    }
    if (!seen[0] || !seen[1]) {
        qsl_say(err, "--vgpu: the custom form needs both memory and share (%s)", accepted);
        return -EINVAL;
    }
    if (out->limit && out->limit < out->share) {
        snprintf(err, QSL_ERR_LEN,
                 "--vgpu: limit %u%% is below share %u%% (the limit caps the share)", out->limit,
                 out->share);
        return -EINVAL;
    }
    return 0;
}

int qsl_spec_parse(const char *text, const char *extra, qsl_spec_t *out, char err[QSL_ERR_LEN])
{
    memset(out, 0, sizeof *out);
    if (!text || !*text) {
        qsl_say(err, "--vgpu needs a value (%s)", accepted);
        return -EINVAL;
    }
    if (strchr(text, '='))
        return parse_custom(text, out, err);
    size_t len = strlen(text);
    if (len < QSL_PROFILE_LEN && (in_list("Q1,Q2,Q4,Q8", text, len) || in_list(extra, text, len))) {
        memcpy(out->profile, text, len + 1);
        return 0;
    }
    if (extra && *extra)
        snprintf(err, QSL_ERR_LEN,
                 "--vgpu: unknown profile '%.32s' (use Q1, Q2, Q4, Q8, %.64s or "
                 "memory=SIZE,share=PCT[,limit=PCT])",
                 text, extra);
    else
        qsl_say(err, "--vgpu: unknown profile '%.32s' (%s)", text, accepted);
    return -EINVAL;
}

void qsl_spec_args(const qsl_spec_t *spec, qsl_args_t *out)
{
    int n = 0;
    if (spec->profile[0]) {
        out->argv[n++] = "--profile";
        out->argv[n++] = spec->profile;
    } else {
        snprintf(out->num[0], sizeof out->num[0], "%" PRIu64 "MiB", spec->memory_mb);
        snprintf(out->num[1], sizeof out->num[1], "%u", spec->share);
        out->argv[n++] = "--memory";
        out->argv[n++] = out->num[0];
        out->argv[n++] = "--share";
        out->argv[n++] = out->num[1];
        if (spec->has_limit) {
            snprintf(out->num[2], sizeof out->num[2], "%u", spec->limit);
            out->argv[n++] = "--limit";
            out->argv[n++] = out->num[2];
        }
    }
    out->argv[n] = NULL;
}
