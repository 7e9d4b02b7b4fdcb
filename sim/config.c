/* config.c - parses the QSIM_* environment into a host description. Pure; any thread. */
#include "sim/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies s[0..n) without leading and trailing blanks into out (size cap). Returns its
 * length, or -1 when it does not fit. */
static int trimmed(const char *s, size_t n, char *out, size_t cap)
{
    while (n > 0 && isspace((unsigned char)*s))
        s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    if (n >= cap)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return (int)n;
}

/* "8GiB", "8192MiB", "512KiB", "1TiB" or a plain number of bytes. */
static int parse_size(const char *s, uint64_t *out)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    static const struct {
        const char *unit;
        int shift;
    } units[] = {{"", 0}, {"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (v == 0 || v > (UINT64_C(1) << 50) >> units[i].shift)
                return -1; /* nothing, or more than a PiB */
            *out = (uint64_t)v << units[i].shift;
            return 0;
        }
    }
    return -1;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

#define EXAMPLE "(want NAME:MEMORY:SMS, e.g. \"" QSIM_DEFAULT_GPUS "\")"

/* One "NAME:MEMORY:SMS" (trimmed, NUL-terminated). The last two colons separate the
 * fields, so a name may itself hold colons. */
static int parse_entry(const char *entry, struct qsim_gpu_spec *g, char err[QSIM_ERR_LEN])
{
    const char *c2 = strrchr(entry, ':');
    const char *c1 = NULL;
    for (const char *p = entry; c2 && p < c2; p++)
        if (*p == ':')
            c1 = p;
    if (!c1) {
        snprintf(err, QSIM_ERR_LEN, "qsim: bad QSIM_GPUS entry \"%.100s\" %s", entry, EXAMPLE);
        return -EINVAL;
    }
    char mem[64], sms[32];
    if (trimmed(entry, (size_t)(c1 - entry), g->name, sizeof g->name) <= 0) {
        snprintf(err, QSIM_ERR_LEN,
                 "qsim: bad QSIM_GPUS entry \"%.100s\": NAME is empty or longer than %d characters "
                 "%s",
                 entry, QSIM_NAME_LEN - 1, EXAMPLE);
        return -EINVAL;
    }
    if (trimmed(c1 + 1, (size_t)(c2 - c1 - 1), mem, sizeof mem) < 0 ||
        parse_size(mem, &g->memory) < 0) {
        snprintf(err, QSIM_ERR_LEN,
                 "qsim: bad QSIM_GPUS entry \"%.100s\": MEMORY must be a size such as 8GiB or "
                 "8192MiB %s",
                 entry, EXAMPLE);
        return -EINVAL;
    }
    unsigned n;
    if (trimmed(c2 + 1, strlen(c2 + 1), sms, sizeof sms) < 0 || parse_uint(sms, 1, 1024, &n) < 0) {
        snprintf(err, QSIM_ERR_LEN,
                 "qsim: bad QSIM_GPUS entry \"%.100s\": SMS must be a number from 1 to 1024 %s",
                 entry, EXAMPLE);
        return -EINVAL;
    }
    g->sms = n;
    return 0;
}

int qsim_config_parse_gpus(qsim_config_t *cfg, const char *list, char err[QSIM_ERR_LEN])
{
    cfg->ngpu = 0;
    cfg->gpus[0] = '\0';
    const char *p = list;
    size_t used = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char entry[QSIM_GPUS_LEN];
        if (trimmed(p, n, entry, sizeof entry) <= 0) {
            snprintf(err, QSIM_ERR_LEN, "qsim: bad QSIM_GPUS \"%.120s\": empty entry %s", list,
                     EXAMPLE);
            return -EINVAL;
        }
        if (cfg->ngpu == QSIM_MAX_DEVICES) {
            snprintf(err, QSIM_ERR_LEN, "qsim: bad QSIM_GPUS: more than %d GPUs", QSIM_MAX_DEVICES);
            return -EINVAL;
        }
        struct qsim_gpu_spec *g = &cfg->gpu[cfg->ngpu];
        int rc = parse_entry(entry, g, err);
        if (rc < 0)
            return rc;
        int w = snprintf(cfg->gpus + used, sizeof cfg->gpus - used, "%s%s:%" PRIu64 ":%u",
                         cfg->ngpu ? "," : "", g->name, g->memory, g->sms);
        if (w < 0 || (size_t)w >= sizeof cfg->gpus - used) {
            snprintf(err, QSIM_ERR_LEN, "qsim: bad QSIM_GPUS: longer than %d characters",
                     QSIM_GPUS_LEN - 1);
            return -EINVAL;
        }
        used += (size_t)w;
        cfg->ngpu++;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}

/* Releases whose CUDA version and driver string are NVIDIA's (the first of each branch):
 * the checkpoint API appeared in r570 (12080), restoring onto other GPUs (gpuPairs) in
 * r580 (13000). */
static const struct qsim_driver drivers[] = {
    {12000, "525.60.13"}, {12020, "535.54.03"}, {12040, "550.54.14"}, {12060, "560.28.03"},
    {12080, "570.86.10"}, {12090, "575.51.03"}, {13000, "580.65.06"},
};

const struct qsim_driver *qsim_config_driver(const char *text, char err[QSIM_ERR_LEN])
{
    size_t n = sizeof drivers / sizeof drivers[0];
    if (!text || !*text)
        return &drivers[n - 1];
    unsigned v;
    for (size_t i = 0; parse_uint(text, 1, 999999, &v) == 0 && i < n; i++) {
        if ((unsigned)drivers[i].cuda == v)
            return &drivers[i];
    }
    int len = snprintf(err, QSIM_ERR_LEN, "qsim: bad QSIM_DRIVER_VERSION \"%.40s\": want one of",
                       text);
    for (size_t i = 0; i < n && len > 0 && len < QSIM_ERR_LEN; i++)
        len += snprintf(err + len, QSIM_ERR_LEN - (size_t)len, " %d (r%.3s)%s", drivers[i].cuda,
                        drivers[i].release, i + 1 < n ? "," : "");
    return NULL;
}

int qsim_config_from_env(qsim_config_t *cfg, char err[QSIM_ERR_LEN])
{
    memset(cfg, 0, sizeof *cfg);
    const char *ns = getenv("QSIM_NAMESPACE");
    if (!ns || !*ns)
        ns = QSIM_DEFAULT_NAMESPACE;
    size_t len = strlen(ns);
    bool ok = len < QSIM_NS_LEN;
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)ns[i]) || ns[i] == '.' || ns[i] == '_' || ns[i] == '-';
    if (!ok) {
        snprintf(err, QSIM_ERR_LEN,
                 "qsim: bad QSIM_NAMESPACE \"%.80s\": use at most %d of A-Z a-z 0-9 . _ -", ns,
                 QSIM_NS_LEN - 1);
        return -EINVAL;
    }
    memcpy(cfg->ns, ns, len + 1);

    const char *slice = getenv("QSIM_TIMESLICE_US");
    unsigned us = QSIM_DEFAULT_SLICE_US;
    if (slice && *slice && parse_uint(slice, 50, 1000000, &us) < 0) {
        snprintf(err, QSIM_ERR_LEN,
                 "qsim: bad QSIM_TIMESLICE_US \"%.80s\": want microseconds from 50 to 1000000",
                 slice);
        return -EINVAL;
    }
    cfg->slice_ns = (uint64_t)us * 1000u;

    /* Per process, not part of the host's configuration: on real hardware what a
     * context costs differs between processes too (driver, libraries loaded). */
    const char *ctx = getenv("QSIM_CONTEXT_MEMORY");
    cfg->ctx_memory = QSIM_DEFAULT_CONTEXT_MEMORY;
    if (ctx && *ctx && strcmp(ctx, "0") == 0) {
        cfg->ctx_memory = 0;
    } else if (ctx && *ctx &&
               (parse_size(ctx, &cfg->ctx_memory) < 0 || cfg->ctx_memory > (UINT64_C(1) << 40))) {
        snprintf(err, QSIM_ERR_LEN,
                 "qsim: bad QSIM_CONTEXT_MEMORY \"%.80s\": want a size such as 256MiB (at most "
                 "1TiB) or 0",
                 ctx);
        return -EINVAL;
    }

    /* Per process too: every process of a real host runs the same driver, so give them
     * all the same value. */
    if (!(cfg->driver = qsim_config_driver(getenv("QSIM_DRIVER_VERSION"), err)))
        return -EINVAL;

    const char *gpus = getenv("QSIM_GPUS");
    return qsim_config_parse_gpus(cfg, gpus ? gpus : QSIM_DEFAULT_GPUS, err);
}

void qsim_config_cc(const char *name, int *major, int *minor)
{
    /* First match wins, so more specific names come first. */
    static const struct {
        const char *pattern;
        int major, minor;
    } table[] = {
        {"GTX 10", 6, 1}, {"TITAN X", 6, 1}, {"TITAN Xp", 6, 1}, {"P100", 6, 0},
        {"P40", 6, 1},    {"P4", 6, 1},      {"V100", 7, 0},     {"TITAN V", 7, 0},
        {"GTX 16", 7, 5}, {"RTX 20", 7, 5},  {"T4", 7, 5},       {"TITAN RTX", 7, 5},
        {"A100", 8, 0},   {"A30", 8, 0},     {"A800", 8, 0},     {"RTX 30", 8, 6},
        {"A10", 8, 6},    {"A40", 8, 6},     {"A16", 8, 6},      {"A2", 8, 6},
        {"RTX A", 8, 6},  {"RTX 40", 8, 9},  {"L40", 8, 9},      {"L4", 8, 9},
        {"Ada", 8, 9},    {"H100", 9, 0},    {"H200", 9, 0},     {"H800", 9, 0},
        {"H20", 9, 0},    {"GH200", 9, 0},   {"B200", 10, 0},    {"B100", 10, 0},
        {"GB200", 10, 0}, {"RTX 50", 12, 0}, {"RTX PRO", 12, 0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcasestr(name, table[i].pattern)) {
            *major = table[i].major;
            *minor = table[i].minor;
            return;
        }
    }
    *major = 8;
    *minor = 6;
}

/* FNV-1a over s, then a splitmix64 finaliser: spreads the bits of short inputs. */
static uint64_t hash64(const char *s, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    h += 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

void qsim_config_uuid(const char *ns, int index, uint8_t uuid[16])
{
    char key[QSIM_NS_LEN + 32];
    snprintf(key, sizeof key, "qsim/%s/%d", ns, index);
    uint64_t a = hash64(key, 1), b = hash64(key, 2);
    for (int i = 0; i < 8; i++) {
        uuid[i] = (uint8_t)(a >> (8 * i));
        uuid[8 + i] = (uint8_t)(b >> (8 * i));
    }
}

void qsim_config_uuid_str(const uint8_t u[16], char out[QSIM_UUID_STR_LEN])
{
    snprintf(out, QSIM_UUID_STR_LEN,
             "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
}
