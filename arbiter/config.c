/* config.c - defaults and the INI file (libinih). Pure, single-threaded. */
#include "arbiter/config.h"

#include "proto/units.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const qa_profile_t builtin[] = {
    {"Q1", 1024, 10, 0},
    {"Q2", 2048, 20, 0},
    {"Q4", 4096, 40, 0},
    {"Q8", 8192, 80, 0},
};
#define NBUILTIN (sizeof builtin / sizeof builtin[0])

void qa_config_defaults(qa_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->placement = QA_SPREAD;
    cfg->oversub_memory = 1.0;
    cfg->oversub_share = 1.0;
    cfg->util_weight = 0.5;
    cfg->log_level = QA_INFO;
    cfg->heartbeat_timeout_ms = 1500;
    cfg->reclaim_timeout_ms = 500;
    cfg->reconnect_grace_ms = 800;
    cfg->sched_window_ms = 200;
    cfg->quantum_min_ms = 2;
    cfg->quantum_max_ms = 50;
    cfg->lease_grace_ms = 1000;
    cfg->max_tenant_connections = 4096;
    cfg->max_pending_connections = 1024;
    cfg->max_pending_per_uid = 128;
    cfg->hello_timeout_ms = 3000;
    memcpy(cfg->profiles, builtin, sizeof builtin);
    cfg->nprofiles = NBUILTIN;
}

const qa_profile_t *qa_config_profile(const qa_config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nprofiles; i++) {
        if (strcmp(cfg->profiles[i].name, name) == 0)
            return &cfg->profiles[i];
    }
    return NULL;
}

/* Parsing state handed to inih. */
struct parse {
    qa_config_t *cfg;
    const char *path;
    FILE *file;
    int line;                        /* lines read so far: the line the handler is called for */
    int err_line;                    /* first problem found by the handler, 0 if none */
    char err[200];                   /* its text */
    int first_line[QA_MAX_PROFILES]; /* where each file profile's first key is */
};

/* inih reader: fgets that counts lines, so the handler knows where it is. */
static char *reader(char *buf, int size, void *arg)
{
    struct parse *p = arg;
    char *s = fgets(buf, size, p->file);
    if (s && strchr(s, '\n'))
        p->line++;
    else if (s && feof(p->file))
        p->line++; /* a last line without newline */
    return s;
}

static int problem(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int problem(struct parse *p, const char *fmt, ...)
{
    if (!p->err_line) {
        p->err_line = p->line;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, sizeof p->err, fmt, ap);
        va_end(ap);
    }
    return 0; /* inih: this line had an error */
}

static int parse_uint(const char *v, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < min || n > max)
        return -EINVAL;
    *out = (unsigned)n;
    return 0;
}

static int parse_ratio(const char *v, double min, double max, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !isfinite(d) || d < min || d > max)
        return -EINVAL;
    *out = d;
    return 0;
}

static int arbiter_key(struct parse *p, const char *key, const char *v)
{
    qa_config_t *c = p->cfg;
    if (strcmp(key, "placement") == 0) {
        if (strcmp(v, "spread") == 0)
            c->placement = QA_SPREAD;
        else if (strcmp(v, "pack") == 0)
            c->placement = QA_PACK;
        else
            return problem(p, "placement '%s' is neither 'spread' nor 'pack'", v);
        return 1;
    }
    if (strcmp(key, "oversub_memory") == 0 || strcmp(key, "oversub_share") == 0) {
        double *dst = key[8] == 'm' ? &c->oversub_memory : &c->oversub_share;
        if (parse_ratio(v, 0.01, 100, dst) < 0)
            return problem(p, "%s '%s' must be a ratio between 0.01 and 100 (1.0: none)", key, v);
        return 1;
    }
    if (strcmp(key, "util_weight") == 0) {
        if (parse_ratio(v, 0, 10, &c->util_weight) < 0)
            return problem(p, "%s '%s' must be a number between 0 and 10", key, v);
        return 1;
    }
    if (strcmp(key, "log_level") == 0) {
        if (qa_log_parse_level(v, &c->log_level) < 0)
            return problem(p, "log_level '%s' is not one of error, warn, info, debug", v);
        return 1;
    }
    if (strcmp(key, "heartbeat_timeout_ms") == 0) {
        /* The shim heartbeats every 500 ms: below two periods live tenants get dropped. */
        if (parse_uint(v, 1000, 600000, &c->heartbeat_timeout_ms) < 0)
            return problem(p,
                           "%s '%s' must be milliseconds between 1000 and 600000 (tenants "
                           "heartbeat every 500 ms)",
                           key, v);
        return 1;
    }
    if (strcmp(key, "max_tenant_connections") == 0) {
        if (parse_uint(v, 1, 1000000, &c->max_tenant_connections) < 0)
            return problem(p, "%s '%s' must be a number between 1 and 1000000", key, v);
        return 1;
    }
    if (strcmp(key, "max_pending_connections") == 0) {
        if (parse_uint(v, 1, 1000000, &c->max_pending_connections) < 0)
            return problem(p, "%s '%s' must be a number between 1 and 1000000", key, v);
        return 1;
    }
    if (strcmp(key, "max_pending_per_uid") == 0) {
        if (parse_uint(v, 0, 1000000, &c->max_pending_per_uid) < 0)
            return problem(p, "%s '%s' must be a number between 0 (no limit) and 1000000", key, v);
        return 1;
    }
    if (strcmp(key, "reconnect_grace_ms") == 0) {
        /* The shim retries its hello every 200 ms; its calls wait 1.5 s for a reply. */
        if (parse_uint(v, 0, 10000, &c->reconnect_grace_ms) < 0)
            return problem(p, "%s '%s' must be milliseconds between 0 and 10000", key, v);
        return 1;
    }
    if (strcmp(key, "reclaim_timeout_ms") == 0) {
        if (parse_uint(v, 10, 600000, &c->reclaim_timeout_ms) < 0)
            return problem(p, "%s '%s' must be milliseconds between 10 and 600000", key, v);
        return 1;
    }
    static const struct {
        const char *key;
        size_t off;
        unsigned min, max;
    } ms_keys[] = {
        {"sched_window_ms", offsetof(qa_config_t, sched_window_ms), 10, 10000},
        {"quantum_min_ms", offsetof(qa_config_t, quantum_min_ms), 1, 1000},
        {"quantum_max_ms", offsetof(qa_config_t, quantum_max_ms), 1, 1000},
        {"lease_grace_ms", offsetof(qa_config_t, lease_grace_ms), 10, 600000},
        {"hello_timeout_ms", offsetof(qa_config_t, hello_timeout_ms), 100, 600000},
    };
    for (size_t i = 0; i < sizeof ms_keys / sizeof ms_keys[0]; i++) {
        if (strcmp(key, ms_keys[i].key) != 0)
            continue;
        if (parse_uint(v, ms_keys[i].min, ms_keys[i].max,
                       (unsigned *)((char *)c + ms_keys[i].off)) < 0)
            return problem(p, "%s '%s' must be milliseconds between %u and %u", key, v,
                           ms_keys[i].min, ms_keys[i].max);
        return 1;
    }
    return problem(p, "unknown key '%s' in [arbiter]", key);
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < QP_PROFILE_LEN &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

static int profile_key(struct parse *p, const char *name, const char *key, const char *v)
{
    qa_config_t *c = p->cfg;
    if (!valid_name(name))
        return problem(p, "profile name '%s' must be 1-32 letters, digits, '.', '_' or '-'", name);
    if (strcmp(name, "custom") == 0)
        return problem(p, "profile name '%s' is reserved", name);
    qa_profile_t *pr = (qa_profile_t *)qa_config_profile(c, name);
    if (pr && pr < c->profiles + NBUILTIN)
        return problem(p, "profile %s is built in and cannot be redefined", name);
    if (!pr) {
        if (c->nprofiles == QA_MAX_PROFILES)
            return problem(p, "too many profiles (at most %d), at '%s'",
                           QA_MAX_PROFILES - (int)NBUILTIN, name);
        pr = &c->profiles[c->nprofiles];
        p->first_line[c->nprofiles++] = p->line;
        memset(pr, 0, sizeof *pr);
        snprintf(pr->name, sizeof pr->name, "%s", name);
    }
    char err[QP_ERR_LEN];
    if (strcmp(key, "memory") == 0) {
        if (qp_parse_size_mb(v, &pr->memory_mb, err) < 0)
            return problem(p, "%s", err);
    } else if (strcmp(key, "share") == 0) {
        if (parse_uint(v, 1, 100, &pr->share) < 0)
            return problem(p, "share '%s' must be a percentage from 1 to 100", v);
    } else if (strcmp(key, "limit") == 0) {
        if (parse_uint(v, 0, 100, &pr->limit) < 0)
            return problem(p, "limit '%s' must be a percentage from 0 (none) to 100", v);
    } else {
        return problem(p, "unknown key '%s' in a [profile] (memory, share, limit)", key);
    }
    return 1;
}

static int handler(void *arg, const char *section, const char *key, const char *value)
{
    struct parse *p = arg;
    if (strcmp(section, "arbiter") == 0)
        return arbiter_key(p, key, value);
    if (strncmp(section, "profile ", 8) == 0)
        return profile_key(p, section + 8, key, value);
    if (section[0] == '\0')
        return problem(p, "key '%s' outside any section (put it under [arbiter])", key);
    return problem(p, "unknown section [%s] (use [arbiter] or [profile NAME])", section);
}

int qa_config_load(qa_config_t *cfg, const char *path, char err[QP_ERR_LEN])
{
    struct parse p;
    memset(&p, 0, sizeof p);
    p.cfg = cfg;
    p.path = path;
    if (!(p.file = fopen(path, "r"))) {
        snprintf(err, QP_ERR_LEN, "%.150s: cannot read: %s", path, strerror(errno));
        return -EINVAL;
    }
    int line = ini_parse_stream(reader, &p, handler, &p);
    fclose(p.file);
    if (line < 0) {
        snprintf(err, QP_ERR_LEN, "%.150s: out of memory while parsing", path);
        return -EINVAL;
    }
    if (p.err_line && (line == 0 || p.err_line <= line)) {
        snprintf(err, QP_ERR_LEN, "%.100s:%d: %.140s", path, p.err_line, p.err);
        return -EINVAL;
    }
    if (line > 0) {
        snprintf(err, QP_ERR_LEN,
                 "%.100s:%d: syntax error (expected '[section]', 'key = value' or a comment)", path,
                 line);
        return -EINVAL;
    }
    if (cfg->quantum_min_ms > cfg->quantum_max_ms) {
        snprintf(err, QP_ERR_LEN, "%.100s: quantum_min_ms %u is above quantum_max_ms %u", path,
                 cfg->quantum_min_ms, cfg->quantum_max_ms);
        return -EINVAL;
    }
    for (size_t i = NBUILTIN; i < cfg->nprofiles; i++) {
        const qa_profile_t *pr = &cfg->profiles[i];
        if (!pr->memory_mb || !pr->share) {
            snprintf(err, QP_ERR_LEN, "%.100s:%d: profile %s needs both 'memory' and 'share'", path,
                     p.first_line[i], pr->name);
            return -EINVAL;
        }
        if (pr->limit && pr->limit < pr->share) {
            snprintf(err, QP_ERR_LEN, "%.100s:%d: profile %s has limit %u%% below its share %u%%",
                     path, p.first_line[i], pr->name, pr->limit, pr->share);
            return -EINVAL;
        }
    }
    return 0;
}
