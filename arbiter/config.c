/* config.c - defaults and the INI file (libinih). Pure, single-threaded. */
#include "arbiter/config.h"

#include "proto/units.h"

#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    cfg->burst_ms = 2;
    cfg->burst_below_pct = 75;
    cfg->preempt_after_ms = 2;
    cfg->max_tenant_connections = 4096;
    cfg->max_pending_connections = 1024;
    cfg->max_pending_per_uid = 128;
    cfg->hello_timeout_ms = 3000;
    cfg->audit_unmanaged = QA_REPORT;
    cfg->audit_over_quota = QA_REPORT;
    cfg->audit_grace_ms = 2000;
    cfg->charge_real = true;
    cfg->balance_interval_s = 60;
    cfg->balance_high = 80;
    cfg->balance_low = 40;
    cfg->balance_memory = true;
    cfg->balance_cooldown = 3;
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

/* The [arbiter] and [audit] keys, each named once: how its value is read and checked. */
enum kind { K_PLACEMENT, K_RATIO, K_LEVEL, K_UINT, K_ACTION, K_CHARGE, K_SWITCH };
static const struct key {
    const char *name;
    enum kind kind;
    size_t off;      /* where the value goes in qa_config_t */
    double min, max; /* the range of a ratio or a number */
    const char *why; /* for K_UINT and K_ACTION: what the range is, after "must be" */
    const char *doc; /* what it does, for qarbiter --print-config (the packaged config file) */
} keys[] = {
    {"placement", K_PLACEMENT, offsetof(qa_config_t, placement), 0, 0, NULL,
     "where a vGPU created without --gpu goes: spread (the least loaded GPU after adding it) or "
     "pack (the most loaded that still fits)"},
    {"oversub_memory", K_RATIO, offsetof(qa_config_t, oversub_memory), 0.01, 100,
     "a ratio between 0.01 and 100 (1.0: none)",
     "per GPU, vGPU memory quotas may sum to its memory x this (0.01-100; 1.0: no "
     "oversubscription)"},
    {"oversub_share", K_RATIO, offsetof(qa_config_t, oversub_share), 0.01, 100,
     "a ratio between 0.01 and 100 (1.0: none)",
     "per GPU, vGPU shares may sum to 100% x this (0.01-100; 1.0: no oversubscription)"},
    {"util_weight", K_RATIO, offsetof(qa_config_t, util_weight), 0, 10, "a number between 0 and 10",
     "weight of the measured utilisation in placement (0-10; 0 ignores it)"},
    {"log_level", K_LEVEL, offsetof(qa_config_t, log_level), 0, 0, NULL,
     "error, warn, info or debug"},
    /* The shim heartbeats every 500 ms: below two periods live tenants get dropped. */
    {"heartbeat_timeout_ms", K_UINT, offsetof(qa_config_t, heartbeat_timeout_ms), 1000, 600000,
     "milliseconds between 1000 and 600000 (tenants heartbeat every 500 ms)",
     "a silent tenant process is dropped after this (1000-600000 ms)"},
    {"reclaim_timeout_ms", K_UINT, offsetof(qa_config_t, reclaim_timeout_ms), 10,
     QA_REPLY_BUDGET_MS, NULL,
     "a memory request waits this long for siblings to give back (10-1400 ms)"},
    {"reconnect_grace_ms", K_UINT, offsetof(qa_config_t, reconnect_grace_ms), 0, 10000, NULL,
     "after a start, memory requests are held this long so that the previous arbiter's tenants "
     "re-report first (0-10000 ms, 0: none; with reclaim_timeout_ms at most 1400)"},
    {"sched_window_ms", K_UINT, offsetof(qa_config_t, sched_window_ms), 10, 10000, NULL,
     "compute: n vGPUs competing get leases of at most this / n (10-10000 ms)"},
    {"quantum_min_ms", K_UINT, offsetof(qa_config_t, quantum_min_ms), 1, 1000, NULL,
     "compute: shortest lease (1-1000 ms, at most quantum_max_ms)"},
    {"quantum_max_ms", K_UINT, offsetof(qa_config_t, quantum_max_ms), 1, 1000, NULL,
     "compute: longest lease (1-1000 ms, at most sched_window_ms)"},
    {"lease_grace_ms", K_UINT, offsetof(qa_config_t, lease_grace_ms), 10, 600000, NULL,
     "compute: a lease not given back this long after its end is taken back (10-600000 ms)"},
    {"burst_ms", K_UINT, offsetof(qa_config_t, burst_ms), 0, 1000, NULL,
     "compute: a vGPU well below its share that asks while another holds the GPU runs a lease "
     "this long beside it at once (0-1000 ms, at most quantum_max_ms; 0: never)"},
    {"burst_below_pct", K_UINT, offsetof(qa_config_t, burst_below_pct), 1, 100, NULL,
     "compute: \"well below\": its use over the last window under this percent of its share "
     "(1-100)"},
    {"preempt_after_ms", K_UINT, offsetof(qa_config_t, preempt_after_ms), 0, 1000, NULL,
     "compute: a holder at or over its share runs at least this long before a waiting vGPU "
     "below its share takes the GPU (0-1000 ms; 0: never)"},
    {"max_tenant_connections", K_UINT, offsetof(qa_config_t, max_tenant_connections), 1, 1000000,
     "a number between 1 and 1000000",
     "tenant.sock connections kept open; more are closed at once (1-1000000)"},
    {"max_pending_connections", K_UINT, offsetof(qa_config_t, max_pending_connections), 1,
     1000000, "a number between 1 and 1000000",
     "of them, without a session yet (1-1000000; at most a quarter of max_tenant_connections: "
     "the rest is kept for sessions)"},
    {"max_pending_per_uid", K_UINT, offsetof(qa_config_t, max_pending_per_uid), 0, 1000000,
     "a number between 0 (no limit) and 1000000",
     "of those, from one uid (0-1000000, 0: no limit; root and the arbiter's own user are not "
     "limited per uid)"},
    {"hello_timeout_ms", K_UINT, offsetof(qa_config_t, hello_timeout_ms), 100, 600000, NULL,
     "a connection without a session this long is closed (100-600000 ms)"},
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* The [audit] keys, read like the [arbiter] ones. */
static const struct key audit_keys[] = {
    {"unmanaged", K_ACTION, offsetof(qa_config_t, audit_unmanaged), QA_IGNORE, QA_KILL,
     "report, kill or ignore", "GPU processes that are no vGPU's tenants: report, kill or ignore"},
    {"over_quota", K_ACTION, offsetof(qa_config_t, audit_over_quota), QA_REPORT, QA_KILL,
     "report or kill", "vGPUs whose processes really hold more than their quota: report or kill"},
    {"grace_ms", K_UINT, offsetof(qa_config_t, audit_grace_ms), 500, 600000, NULL,
     "a finding must last this long before it is reported or acted on (500-600000 ms)"},
    {"charge", K_CHARGE, offsetof(qa_config_t, charge_real), 0, 0, NULL,
     "what counts against a quota: real (allocations plus the driver's memory of each process, as "
     "NVML reports it) or allocated (allocations through the shim only)"},
};
#define NAUDIT_KEYS (sizeof audit_keys / sizeof audit_keys[0])

/* The [balance] keys, likewise. */
static const struct key balance_keys[] = {
    {"interval_s", K_UINT, offsetof(qa_config_t, balance_interval_s), 0, 86400,
     "seconds between 0 (never by itself) and 86400",
     "how often the GPUs are balanced: a vGPU moves from a GPU over 'high' to one under 'low' "
     "(0-86400 s; 0: only when asked, qgpuctl balance)"},
    {"high", K_UINT, offsetof(qa_config_t, balance_high), 1, 100,
     "a percentage from 1 to 100",
     "a GPU whose utilisation averaged over the interval (or memory in use) is above this "
     "percent is overloaded (1-100)"},
    {"low", K_UINT, offsetof(qa_config_t, balance_low), 0, 99, "a percentage from 0 to 99",
     "a GPU below this percent can take a vGPU (0-99, below high)"},
    {"memory", K_SWITCH, offsetof(qa_config_t, balance_memory), 0, 0, NULL,
     "whether memory in use counts as load: on or off"},
    {"cooldown_intervals", K_UINT, offsetof(qa_config_t, balance_cooldown), 0, 1000,
     "a number of intervals from 0 to 1000",
     "a vGPU that moved does not move again for this many intervals (0-1000)"},
};
#define NBALANCE_KEYS (sizeof balance_keys / sizeof balance_keys[0])

/* A profile's keys, in the order of its `seen` lines. */
static const char *const profile_keys[] = {"memory", "share", "limit"};
#define NPROFILE_KEYS 3

#define MAX_FILE (1u << 20) /* far above any real configuration */

/* Parsing state handed to inih. */
struct parse {
    qa_config_t *cfg;
    const char *path;
    FILE *file;
    int line;                        /* lines read so far: the line the handler is called for */
    int err_line;                    /* first problem found by the handler, 0 if none */
    char err[200];                   /* its text */
    int key_line[NKEYS + NAUDIT_KEYS + NBALANCE_KEYS]; /* where each [arbiter], [audit],
                                                         * then [balance] key was set */
    int first_line[QA_MAX_PROFILES]; /* where each file profile's first key is */
    int profile_line[QA_MAX_PROFILES][NPROFILE_KEYS]; /* where its keys were set */
    char section[80];                                 /* the section of the previous key */
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

/* Records in *line that a key is set on this line. A second time is refused (a
 * continuation line, which inih hands over as the same key again, is one too): two
 * values, of which one would silently win, are a mistake to point at. */
static bool once(struct parse *p, int *line, const char *key, const char *where)
{
    if (*line) {
        problem(p, "'%s' is set twice%s (first at line %d): remove one", key, where, *line);
        return false;
    }
    *line = p->line;
    return true;
}

/* The audit's actions as the file names them. */
static const char *const action_names[] = {[QA_IGNORE] = "ignore", [QA_REPORT] = "report",
                                           [QA_KILL] = "kill"};

/* An action's name, or -1. */
static int parse_action(const char *v)
{
    for (int i = 0; i < (int)(sizeof action_names / sizeof action_names[0]); i++)
        if (strcmp(v, action_names[i]) == 0)
            return i;
    return -1;
}

/* A key of [arbiter], [audit] or [balance] (section). */
static int setting_key(struct parse *p, const char *section, const char *key, const char *v)
{
    bool audit = strcmp(section, "audit") == 0, balance = strcmp(section, "balance") == 0;
    const struct key *table = audit ? audit_keys : balance ? balance_keys : keys, *k = NULL;
    size_t n = audit ? NAUDIT_KEYS : balance ? NBALANCE_KEYS : NKEYS;
    size_t first = audit ? NKEYS : balance ? NKEYS + NAUDIT_KEYS : 0;
    for (size_t i = 0; i < n && !k; i++)
        k = strcmp(table[i].name, key) == 0 ? &table[i] : NULL;
    if (!k)
        return problem(p, "unknown key '%s' in [%s]", key, section);
    if (!once(p, &p->key_line[first + (size_t)(k - table)], key, ""))
        return 0;
    char *dst = (char *)p->cfg + k->off;
    switch (k->kind) {
    case K_PLACEMENT:
        if (strcmp(v, "spread") == 0)
            *(qa_policy_t *)dst = QA_SPREAD;
        else if (strcmp(v, "pack") == 0)
            *(qa_policy_t *)dst = QA_PACK;
        else
            return problem(p, "placement '%s' is neither 'spread' nor 'pack'", v);
        return 1;
    case K_RATIO:
        if (parse_ratio(v, k->min, k->max, (double *)dst) < 0)
            return problem(p, "%s '%s' must be %s", key, v, k->why);
        return 1;
    case K_LEVEL:
        if (qa_log_parse_level(v, (qa_level_t *)dst) < 0)
            return problem(p, "log_level '%s' is not one of error, warn, info, debug", v);
        return 1;
    case K_UINT:
        if (parse_uint(v, (unsigned)k->min, (unsigned)k->max, (unsigned *)dst) < 0) {
            if (k->why)
                return problem(p, "%s '%s' must be %s", key, v, k->why);
            return problem(p, "%s '%s' must be milliseconds between %u and %u", key, v,
                           (unsigned)k->min, (unsigned)k->max);
        }
        return 1;
    case K_ACTION: {
        int a = parse_action(v);
        if (a < (int)k->min || a > (int)k->max)
            return problem(p, "%s '%s' must be %s", key, v, k->why);
        *(qa_action_t *)dst = (qa_action_t)a;
        return 1;
    }
    case K_CHARGE:
        if (strcmp(v, "real") != 0 && strcmp(v, "allocated") != 0)
            return problem(p, "charge '%s' is neither 'real' nor 'allocated'", v);
        *(bool *)dst = strcmp(v, "real") == 0;
        return 1;
    case K_SWITCH:
        if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
            return problem(p, "%s '%s' is neither 'on' nor 'off'", key, v);
        *(bool *)dst = strcmp(v, "on") == 0;
        return 1;
    }
    return problem(p, "unknown key '%s' in [%s]", key, section); /* cannot happen */
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
    size_t k = 0;
    while (k < NPROFILE_KEYS && strcmp(profile_keys[k], key) != 0)
        k++;
    if (k == NPROFILE_KEYS)
        return problem(p, "unknown key '%s' in a [profile] (memory, share, limit)", key);
    char where[QP_PROFILE_LEN + 16];
    snprintf(where, sizeof where, " in profile %s", name);
    if (!once(p, &p->profile_line[pr - c->profiles][k], key, where))
        return 0;
    char err[QP_ERR_LEN];
    if (k == 0) {
        if (qp_parse_size_mb(v, &pr->memory_mb, err) < 0)
            return problem(p, "%s", err);
    } else if (k == 1) {
        if (parse_uint(v, 1, 100, &pr->share) < 0)
            return problem(p, "share '%s' must be a percentage from 1 to 100", v);
    } else if (parse_uint(v, 0, 100, &pr->limit) < 0) {
        return problem(p, "limit '%s' must be a percentage from 0 (none) to 100", v);
    }
    return 1;
}

/* A section that starts again after another one: for a profile that is a second
 * definition (which of the two was meant?). Returns false after saying so. */
static bool new_section_ok(struct parse *p, const char *section)
{
    if (strcmp(section, p->section) == 0)
        return true;
    snprintf(p->section, sizeof p->section, "%s", section);
    if (strncmp(section, "profile ", 8) != 0)
        return true;
    const qa_profile_t *pr = qa_config_profile(p->cfg, section + 8);
    if (!pr || pr < p->cfg->profiles + NBUILTIN)
        return true;
    problem(p, "profile %s is defined twice (first at line %d): merge them", section + 8,
            p->first_line[pr - p->cfg->profiles]);
    return false;
}

static int handler(void *arg, const char *section, const char *key, const char *value)
{
    struct parse *p = arg;
    if (!new_section_ok(p, section))
        return 0;
    if (strcmp(section, "arbiter") == 0 || strcmp(section, "audit") == 0 ||
        strcmp(section, "balance") == 0)
        return setting_key(p, section, key, value);
    if (strncmp(section, "profile ", 8) == 0)
        return profile_key(p, section + 8, key, value);
    if (section[0] == '\0')
        return problem(p, "key '%s' outside any section (put it under [arbiter])", key);
    return problem(p, "unknown section [%s] (use [arbiter], [audit], [balance] or [profile NAME])",
                   section);
}

/* Opens path for reading if it is a regular file of at most MAX_FILE bytes: a directory
 * reads as empty (every default silently kept), a device or FIFO may never end. */
static FILE *open_file(const char *path, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, QP_ERR_LEN, "%.150s: cannot read: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
        snprintf(err, QP_ERR_LEN, "%.150s: %s", path,
                 !S_ISREG(st.st_mode) ? "not a regular file (give the path of an INI file)"
                                      : "larger than 1 MiB: not a configuration file");
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        snprintf(err, QP_ERR_LEN, "%.150s: cannot read: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

/* Settings each valid alone that make no sense together. Returns 0 or -EINVAL with err. */
static int check_together(const qa_config_t *cfg, const char *path, char *err)
{
    if (cfg->quantum_min_ms > cfg->quantum_max_ms) {
        snprintf(err, QP_ERR_LEN, "%.100s: quantum_min_ms %u is above quantum_max_ms %u", path,
                 cfg->quantum_min_ms, cfg->quantum_max_ms);
        return -EINVAL;
    }
    /* A lease longer than the window would make every rule stated per window (a busy
     * vGPU gets the GPU once a window, a limit's bucket holds a window's worth) void. */
    if (cfg->quantum_max_ms > cfg->sched_window_ms) {
        snprintf(err, QP_ERR_LEN,
                 "%.100s: quantum_max_ms %u is above sched_window_ms %u (a lease cannot be "
                 "longer than the scheduling window)",
                 path, cfg->quantum_max_ms, cfg->sched_window_ms);
        return -EINVAL;
    }
    /* A burst is a short lease beside the holder: no longer than any lease. */
    if (cfg->burst_ms > cfg->quantum_max_ms) {
        snprintf(err, QP_ERR_LEN,
                 "%.100s: burst_ms %u is above quantum_max_ms %u (a burst is a short lease)", path,
                 cfg->burst_ms, cfg->quantum_max_ms);
        return -EINVAL;
    }
    if (cfg->balance_low >= cfg->balance_high) {
        snprintf(err, QP_ERR_LEN,
                 "%.100s: [balance] low %u is not below high %u (a GPU cannot be both overloaded "
                 "and able to take more)",
                 path, cfg->balance_low, cfg->balance_high);
        return -EINVAL;
    }
    /* A memory request may be held for the grace and then wait for reclaim: the shim
     * gives up first otherwise, and its allocation fails as if the arbiter were gone. */
    if (cfg->reconnect_grace_ms + cfg->reclaim_timeout_ms > QA_REPLY_BUDGET_MS) {
        snprintf(err, QP_ERR_LEN,
                 "%.100s: reconnect_grace_ms %u + reclaim_timeout_ms %u is above %u ms (the "
                 "shim waits 1.5 s for a reply, less the round trip)",
                 path, cfg->reconnect_grace_ms, cfg->reclaim_timeout_ms, QA_REPLY_BUDGET_MS);
        return -EINVAL;
    }
    return 0;
}

/* Writes text as "# " comment lines of at most 90 columns, broken between words. */
static void write_comment(FILE *out, const char *text)
{
    while (*text) {
        size_t n = strlen(text);
        if (n > 88) {
            n = 88;
            while (n > 0 && text[n] != ' ')
                n--;
            if (n == 0) /* one word longer than a line: keep it whole */
                n = strcspn(text, " ");
        }
        fprintf(out, "# %.*s\n", (int)n, text);
        text += n;
        text += strspn(text, " ");
    }
}

/* Writes a ratio so that it reads as one: 1.0, 0.5, 2.25. */
static void write_ratio(FILE *out, double d)
{
    char num[64];
    snprintf(num, sizeof num, "%g", d);
    fprintf(out, "%s%s", num, strpbrk(num, ".e") ? "" : ".0");
}

static void write_keys(const qa_config_t *cfg, const char *section, const struct key *table,
                       size_t n, FILE *out)
{
    fprintf(out, "[%s]\n", section);
    for (size_t i = 0; i < n; i++) {
        const struct key *k = &table[i];
        const char *src = (const char *)cfg + k->off;
        if (k->doc)
            write_comment(out, k->doc);
        fprintf(out, "%s = ", k->name);
        switch (k->kind) {
        case K_PLACEMENT:
            fputs(*(const qa_policy_t *)src == QA_PACK ? "pack" : "spread", out);
            break;
        case K_RATIO:
            write_ratio(out, *(const double *)src);
            break;
        case K_LEVEL:
            fputs(qa_log_level_name(*(const qa_level_t *)src), out);
            break;
        case K_UINT:
            fprintf(out, "%u", *(const unsigned *)src);
            break;
        case K_ACTION:
            fputs(action_names[*(const qa_action_t *)src], out);
            break;
        case K_CHARGE:
            fputs(*(const bool *)src ? "real" : "allocated", out);
            break;
        case K_SWITCH:
            fputs(*(const bool *)src ? "on" : "off", out);
            break;
        }
        fputs(i + 1 < n ? "\n\n" : "\n", out);
    }
}

int qa_config_write(const qa_config_t *cfg, FILE *out)
{
    write_keys(cfg, "arbiter", keys, NKEYS, out);
    fputs("\n", out);
    write_keys(cfg, "audit", audit_keys, NAUDIT_KEYS, out);
    fputs("\n", out);
    write_keys(cfg, "balance", balance_keys, NBALANCE_KEYS, out);
    for (size_t i = NBUILTIN; i < cfg->nprofiles; i++) {
        const qa_profile_t *pr = &cfg->profiles[i];
        fprintf(out, "\n[profile %s]\nmemory = %lluMiB\nshare = %u\n", pr->name,
                (unsigned long long)pr->memory_mb, pr->share);
        if (pr->limit)
            fprintf(out, "limit = %u\n", pr->limit);
    }
    return fflush(out) == 0 && !ferror(out) ? 0 : -EIO;
}

int qa_config_load(qa_config_t *cfg, const char *path, char err[QP_ERR_LEN])
{
    struct parse p;
    memset(&p, 0, sizeof p);
    p.cfg = cfg;
    p.path = path;
    if (!(p.file = open_file(path, err)))
        return -EINVAL;
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
    if (check_together(cfg, path, err) < 0)
        return -EINVAL;
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
