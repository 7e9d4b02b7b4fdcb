/* qgpuctl.c - the administrator's command line over libqvgpu: create, destroy, resize,
 * list, info, gpus, stats, run/env to put a workload into a vGPU, gc to remove the
 * vGPUs of VMs (Slurm jobs) that are gone, migrate and balance to move vGPUs between GPUs.
 * Single-threaded. Exit status: 0 success, 1 the operation failed, 2 bad usage; `run`
 * exits with its command's status. */
#include "qvgpu.h"
#include "client/asan.h"

#include "proto/records.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: qgpuctl [--socket-dir DIR] [--json] COMMAND [ARGS]\n"
    "  create --vm NAME (--profile Q1|Q2|Q4|Q8|NAME | --memory SIZE --share PCT)\n"
    "         [--limit PCT] [--gpu INDEX]      make a vGPU; prints its id\n"
    "  destroy ID | destroy --vm NAME          remove a vGPU, or every vGPU of VM NAME\n"
    "  resize ID [--memory SIZE] [--share PCT] [--limit PCT]   change it live\n"
    "  list | info ID | gpus | stats           show vGPUs, one vGPU, GPUs, totals\n"
    "  run ID -- CMD [ARGS...]                 run CMD inside the vGPU\n"
    "  env ID                                  print what run sets, as export lines\n"
    "  migrate ID --gpu INDEX|UUID             move a vGPU and its running processes to\n"
    "                                          another GPU (of the same chip)\n"
    "  balance [--dry-run]                     move vGPUs off overloaded GPUs; print the plan\n"
    "  cdi sync | cdi show ID | cdi devices ID rewrite the CDI specs; print one; print the\n"
    "                                          --device flags of a container in vGPU ID\n"
    "  gc --vm-prefix PREFIX [--min-age S] [--dry-run] (LIVE... | -)\n"
    "                                          remove the vGPUs of VMs PREFIX<name> whose\n"
    "                                          name is not LIVE (- reads them from stdin)\n"
    "The arbiter is found at --socket-dir, else $QVGPU_SOCKET_DIR, else /run/qvgpu.\n";

/* Options every command may use. */
struct global {
    const char *socket_dir; /* NULL: libqvgpu's default */
    bool json;              /* one JSON document instead of a table */
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qgpuctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

#define USAGE 2
static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qgpuctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (qgpuctl --help)\n", stderr);
    va_end(ap);
    return USAGE;
}

static qv_client_t *connect_or_say(const struct global *g)
{
    char err[QV_ERR_LEN];
    qv_client_t *c = qv_connect(g->socket_dir, err);
    if (!c)
        fail("%s", err);
    return c;
}

/* ---- value parsing ----------------------------------------------------------------- */

static int parse_percent(const char *opt, const char *s, unsigned min, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end == '%')
        end++;
    if (errno || end == s || *end || s[0] == '-' || v < min || v > 100)
        return bad_usage("%s '%s' is not a percentage from %u to 100", opt, s, min);
    *out = (unsigned)v;
    return 0;
}

static int parse_size(const char *opt, const char *s, uint64_t *out)
{
    char err[QV_ERR_LEN];
    if (qv_parse_size_mb(s, out, err) < 0)
        return bad_usage("%s: %s", opt, err);
    return 0;
}

/* The value after option argv[*i], or NULL after saying it is missing. */
static const char *value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        bad_usage("%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* ---- output ------------------------------------------------------------------------ */

static void print_json(json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    if (text)
        puts(text);
    free(text);
    json_decref(doc);
}

/* JSON of the public structs, made from the records' field lists (proto/records.h): the
 * keys are the wire's, in its order, and a field added there is printed here too. */
#define JSON_STR(x) json_string(x)
#define JSON_UINT(x) json_integer((json_int_t)(x))
#define JSON_INT(x) json_integer((json_int_t)(x))
#define JSON_INDEX(x) json_integer((json_int_t)(x))
#define JSON_FLOAT(x) json_real(x)
#define JSON_FIELD(m, type, max, opt) json_object_set_new(o, #m, JSON_##type(r->m));
#define JSON_NONE(m, type, max, opt)

static json_t *vgpu_json(const qv_vgpu_t *r)
{
    json_t *o = json_object();
    QP_INFO_FIELDS(JSON_FIELD)
    return o;
}

static json_t *gpu_json(const qv_gpu_t *r)
{
    json_t *o = json_object();
    QP_GPU_FIELDS(JSON_FIELD, JSON_NONE)
    return o;
}

static json_t *finding_json(const qv_finding_t *r)
{
    json_t *o = json_object();
    QP_FINDING_FIELDS(JSON_FIELD)
    return o;
}

/* The totals of s into o. */
static void totals_json(json_t *o, const qv_stats_t *r)
{
    QP_TOTALS_FIELDS(JSON_FIELD)
}

static json_t *gpus_json(const qv_gpu_t *gpus, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, gpu_json(&gpus[i]));
    return a;
}

/* "8 GiB" or "1536 MiB". */
static const char *mib(uint64_t mb, char buf[32])
{
    if (mb >= 1024 && mb % 1024 == 0)
        snprintf(buf, 32, "%llu GiB", (unsigned long long)(mb / 1024));
    else
        snprintf(buf, 32, "%llu MiB", (unsigned long long)mb);
    return buf;
}

static const char *limit_text(unsigned limit, char buf[16])
{
    if (limit)
        snprintf(buf, 16, "%u%%", limit);
    else
        snprintf(buf, 16, "none");
    return buf;
}

static void print_gpu_table(const qv_gpu_t *gpus, size_t n)
{
    printf("%-5s %-28s %10s %10s %10s %10s %6s %6s %6s %5s\n", "GPU", "NAME", "MEMORY", "USED",
           "RESERVED", "UNMANAGED", "SHARE", "VGPUS", "UTIL", "SMS");
    for (size_t i = 0; i < n; i++) {
        const qv_gpu_t *g = &gpus[i];
        char a[32], b[32], c[32], d[32], share[16];
        snprintf(share, sizeof share, "%u%%", g->share_reserved);
        printf("%-5d %-28.28s %10s %10s %10s %10s %6s %6u %5.1f%% %5u\n", g->index, g->name,
               mib(g->memory_total_mb, a), mib(g->memory_used_mb, b), mib(g->memory_reserved_mb, c),
               mib(g->memory_unmanaged_mb, d), share, g->vgpus, g->util, g->sms);
    }
}

/* ---- commands ---------------------------------------------------------------------- */

static int cmd_create(const struct global *g, int argc, char **argv)
{
    qv_create_t req = {.gpu = -1};
    for (int i = 0; i < argc; i++) {
        const char *v;
        int rc = 0;
        if (strcmp(argv[i], "--vm") == 0 || strcmp(argv[i], "--profile") == 0) {
            if (!(v = value(argc, argv, &i)))
                return USAGE;
            *(argv[i - 1][2] == 'v' ? &req.vm : &req.profile) = v;
        } else if (strcmp(argv[i], "--memory") == 0) {
            rc = (v = value(argc, argv, &i)) ? parse_size("--memory", v, &req.memory_mb) : USAGE;
        } else if (strcmp(argv[i], "--share") == 0) {
            rc = (v = value(argc, argv, &i)) ? parse_percent("--share", v, 1, &req.share) : USAGE;
        } else if (strcmp(argv[i], "--limit") == 0) {
            rc = (v = value(argc, argv, &i)) ? parse_percent("--limit", v, 0, &req.limit) : USAGE;
            req.has_limit = 1;
        } else if (strcmp(argv[i], "--gpu") == 0) {
            unsigned gpu;
            char *end;
            if (!(v = value(argc, argv, &i)))
                return USAGE;
            gpu = (unsigned)strtoul(v, &end, 10);
            if (end == v || *end || v[0] == '-' || gpu > 1023)
                return bad_usage("--gpu '%s' is not a GPU index", v);
            req.gpu = (int)gpu;
        } else {
            return bad_usage("create: unknown option '%s'", argv[i]);
        }
        if (rc)
            return rc;
    }
    if (!req.vm)
        return bad_usage("create needs --vm NAME");
    if (!req.profile && (!req.memory_mb || !req.share))
        return bad_usage("create needs --profile, or both --memory and --share");
    if (req.profile && (req.memory_mb || req.share))
        return bad_usage("create takes --profile or --memory/--share, not both");
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    int rc = qv_create(c, &req, &v, NULL, err);
    qv_disconnect(&c);
    if (rc < 0)
        return fail("cannot create vGPU for '%s': %s", req.vm, err);
    if (g->json)
        print_json(vgpu_json(&v));
    else
        printf("%s\n", v.id);
    return 0;
}

/* ---- destroy and gc ----------------------------------------------------------------- */

/* Destroys vGPU id; one that is already gone counts as destroyed (the aim is that it is
 * not there). Returns 0, or 1 after saying why. */
static int destroy_one(qv_client_t *c, const char *id)
{
    char err[QV_ERR_LEN];
    int rc = qv_destroy(c, id, err);
    if (rc < 0 && rc != -ENOENT)
        return fail("cannot destroy vGPU '%s': %s", id, err);
    return 0;
}

/* destroy --vm NAME: every vGPU made for NAME; none there is success. */
static int destroy_vm(const struct global *g, const char *vm)
{
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    qv_vgpu_list_t *l;
    char err[QV_ERR_LEN];
    if (qv_list(c, &l, err) < 0) {
        qv_disconnect(&c);
        return fail("cannot destroy the vGPUs of '%s': %s", vm, err);
    }
    int rc = 0;
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->vgpus[i].vm, vm) != 0)
            continue;
        if (destroy_one(c, l->vgpus[i].id) == 0)
            printf("%s\n", l->vgpus[i].id);
        else
            rc = 1;
    }
    qv_vgpu_list_free(&l);
    qv_disconnect(&c);
    return rc;
}

static int cmd_destroy(const struct global *g, int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[0], "--vm") == 0)
        return destroy_vm(g, argv[1]);
    if (argc != 1 || argv[0][0] == '-')
        return bad_usage("destroy takes one vGPU id, or --vm NAME");
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    char err[QV_ERR_LEN];
    int rc = qv_destroy(c, argv[0], err);
    qv_disconnect(&c);
    return rc < 0 ? fail("cannot destroy vGPU '%s': %s", argv[0], err) : 0;
}

/* The names gc is told are alive. */
struct live {
    char **names; /* owned, each owned */
    size_t count; /* entries in names */
    size_t cap;   /* room in names */
};

static int live_add(struct live *l, const char *name, size_t len)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **n = realloc(l->names, cap * sizeof *n);
        if (!n)
            return fail("out of memory");
        l->names = n;
        l->cap = cap;
    }
    if (!(l->names[l->count] = strndup(name, len)))
        return fail("out of memory");
    l->count++;
    return 0;
}

/* Adds the whitespace-separated words of stdin. */
static int live_read(struct live *l, FILE *in)
{
    char word[256];
    int c;
    size_t n = 0;
    do {
        c = fgetc(in);
        if (c == EOF || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            if (n && live_add(l, word, n))
                return 1;
            n = 0;
        } else if (n < sizeof word) {
            word[n++] = (char)c;
        } else {
            return fail("gc: a live name on stdin is longer than %zu bytes", sizeof word);
        }
    } while (c != EOF);
    return ferror(in) ? fail("gc: cannot read stdin: %s", strerror(errno)) : 0;
}

static void live_free(struct live *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->names[i]);
    free(l->names);
}

/* What gc does with one vGPU. */
enum verdict {
    NOT_OURS, /* its VM name does not start with the prefix */
    LIVE,     /* its name is among the live ones */
    YOUNG,    /* made less than min_age seconds ago: its owner may be newer than the list */
    BUSY,     /* processes still use it */
    DESTROY,  /* none of the above */
};

/* Pure: the decision for v, given the prefix, the live names, now and min_age. */
static enum verdict judge(const qv_vgpu_t *v, const char *prefix, const struct live *l, int64_t now,
                          int64_t min_age)
{
    size_t plen = strlen(prefix);
    if (strncmp(v->vm, prefix, plen) != 0)
        return NOT_OURS;
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(v->vm + plen, l->names[i]) == 0)
            return LIVE;
    }
    if (now - v->created < min_age)
        return YOUNG;
    return v->procs ? BUSY : DESTROY;
}

static int cmd_gc(const struct global *g, int argc, char **argv)
{
    /* Before anything is read: a vGPU made after this instant may belong to a job
     * started after the caller took its list of live names. */
    int64_t now = (int64_t)time(NULL);
    const char *prefix = NULL;
    long min_age = 60;
    bool dry = false, from_stdin = false;
    struct live l = {NULL, 0, 0};
    int rc = 0;
    for (int i = 0; i < argc && !rc; i++) {
        const char *v;
        if (strcmp(argv[i], "--vm-prefix") == 0) {
            if (!(prefix = value(argc, argv, &i)))
                rc = USAGE;
        } else if (strcmp(argv[i], "--min-age") == 0) {
            char *end;
            if (!(v = value(argc, argv, &i))) {
                rc = USAGE;
                break;
            }
            errno = 0;
            min_age = strtol(v, &end, 10);
            if (errno || end == v || *end || min_age < 0 || min_age > 365L * 86400)
                rc = bad_usage("--min-age '%s' is not a number of seconds", v);
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry = true;
        } else if (strcmp(argv[i], "-") == 0) {
            from_stdin = true;
        } else if (argv[i][0] == '-') {
            rc = bad_usage("gc: unknown option '%s'", argv[i]);
        } else {
            rc = live_add(&l, argv[i], strlen(argv[i]));
        }
    }
    if (!rc && (!prefix || !*prefix))
        rc = bad_usage("gc needs --vm-prefix PREFIX (e.g. slurm-)");
    if (!rc && !from_stdin && l.count == 0)
        rc = bad_usage("gc needs the live names, or - to read them from stdin");
    if (!rc && from_stdin)
        rc = live_read(&l, stdin);
    qv_client_t *c = rc ? NULL : connect_or_say(g);
    if (!rc && !c)
        rc = 1;
    qv_vgpu_list_t *list = NULL;
    char err[QV_ERR_LEN];
    if (!rc && qv_list(c, &list, err) < 0)
        rc = fail("gc: cannot list vGPUs: %s", err);
    json_t *done = json_array(), *kept = json_array();
    for (size_t i = 0; !rc && i < list->count; i++) {
        const qv_vgpu_t *v = &list->vgpus[i];
        enum verdict what = judge(v, prefix, &l, now, min_age);
        char why[96];
        if (what == YOUNG)
            snprintf(why, sizeof why, "made %llds ago, less than --min-age %ld",
                     (long long)(now - v->created), min_age);
        else if (what == BUSY)
            snprintf(why, sizeof why, "%u process%s still use%s it", v->procs,
                     v->procs == 1 ? "" : "es", v->procs == 1 ? "s" : "");
        if (what == YOUNG || what == BUSY) {
            json_array_append_new(
                kept, json_pack("{s:s, s:s, s:s}", "id", v->id, "vm", v->vm, "reason", why));
            if (!g->json)
                fprintf(stderr, "qgpuctl: gc: kept %s (%s): %s\n", v->id, v->vm, why);
        }
        if (what != DESTROY)
            continue;
        if (!dry && destroy_one(c, v->id)) {
            rc = 1;
            continue;
        }
        json_array_append_new(done, json_pack("{s:s, s:s}", "id", v->id, "vm", v->vm));
        if (!g->json)
            printf("%s %s (%s)\n", dry ? "would destroy" : "destroyed", v->id, v->vm);
    }
    if (g->json && list) {
        print_json(json_pack("{s:o, s:o, s:b}", dry ? "would_destroy" : "destroyed", done, "kept",
                             kept, "dry_run", dry));
    } else {
        json_decref(done);
        json_decref(kept);
    }
    qv_vgpu_list_free(&list);
    qv_disconnect(&c);
    live_free(&l);
    return rc;
}

static int cmd_resize(const struct global *g, int argc, char **argv)
{
    if (argc < 1 || argv[0][0] == '-')
        return bad_usage("resize needs a vGPU id first");
    qv_resize_t req = {0};
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int rc;
        if (strcmp(argv[i], "--memory") == 0) {
            rc = (v = value(argc, argv, &i)) ? parse_size("--memory", v, &req.memory_mb) : USAGE;
            req.has_memory = 1;
        } else if (strcmp(argv[i], "--share") == 0) {
            rc = (v = value(argc, argv, &i)) ? parse_percent("--share", v, 1, &req.share) : USAGE;
            req.has_share = 1;
        } else if (strcmp(argv[i], "--limit") == 0) {
            rc = (v = value(argc, argv, &i)) ? parse_percent("--limit", v, 0, &req.limit) : USAGE;
            req.has_limit = 1;
        } else {
            return bad_usage("resize: unknown option '%s'", argv[i]);
        }
        if (rc)
            return rc;
    }
    if (!req.has_memory && !req.has_share && !req.has_limit)
        return bad_usage("resize needs --memory, --share or --limit");
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    int rc = qv_resize(c, argv[0], &req, &v, err);
    qv_disconnect(&c);
    if (rc < 0)
        return fail("cannot resize vGPU '%s': %s", argv[0], err);
    if (g->json)
        print_json(vgpu_json(&v));
    return 0;
}

static int cmd_list(const struct global *g, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return bad_usage("list takes no arguments");
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    qv_vgpu_list_t *l;
    char err[QV_ERR_LEN];
    int rc = qv_list(c, &l, err);
    qv_disconnect(&c);
    if (rc < 0)
        return fail("cannot list vGPUs: %s", err);
    if (g->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < l->count; i++)
            json_array_append_new(a, vgpu_json(&l->vgpus[i]));
        print_json(json_pack("{s:o}", "vgpus", a));
    } else {
        printf("%-10s %-16s %4s %-8s %9s %6s %6s %10s %10s %6s %6s\n", "ID", "VM", "GPU",
               "PROFILE", "MEMORY", "SHARE", "LIMIT", "USED", "REAL", "PROCS", "UTIL");
        for (size_t i = 0; i < l->count; i++) {
            const qv_vgpu_t *v = &l->vgpus[i];
            char a[32], b[32], c[32], share[16], lim[16];
            snprintf(share, sizeof share, "%u%%", v->share);
            printf("%-10s %-16.16s %4d %-8.8s %9s %6s %6s %10s %10s %6u %5.1f%%\n", v->id, v->vm,
                   v->gpu, v->profile, mib(v->memory_mb, a), share, limit_text(v->limit, lim),
                   mib(v->memory_used >> 20, b), mib(v->memory_real >> 20, c), v->procs, v->util);
        }
    }
    qv_vgpu_list_free(&l);
    return 0;
}

static int cmd_info(const struct global *g, int argc, char **argv)
{
    if (argc != 1)
        return bad_usage("info takes one vGPU id");
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    qv_vgpu_t v;
    char err[QV_ERR_LEN];
    int rc = qv_info(c, argv[0], &v, err);
    qv_disconnect(&c);
    if (rc < 0)
        return fail("cannot show vGPU '%s': %s", argv[0], err);
    if (g->json) {
        print_json(vgpu_json(&v));
        return 0;
    }
    char a[32], b[32], lim[16], when[64];
    time_t created = (time_t)v.created;
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&created, &tm));
    printf("id:          %s\n", v.id);
    printf("vm:          %s\n", v.vm);
    printf("gpu:         %d (%s)\n", v.gpu, v.gpu_uuid);
    printf("profile:     %s\n", v.profile);
    printf("memory:      %s\n", mib(v.memory_mb, a));
    printf("cuda_cores:  %llu\n", (unsigned long long)v.cuda_cores);
    printf("share:       %u%%\n", v.share);
    printf("limit:       %s\n", limit_text(v.limit, lim));
    printf("utilization: %.1f%%\n", v.util);
    printf("memory_used: %s (%llu bytes) allocated by its processes\n",
           mib(v.memory_used >> 20, b), (unsigned long long)v.memory_used);
    printf("memory_real: %s (%llu bytes) held on the GPU, as NVML reports it\n",
           mib(v.memory_real >> 20, b), (unsigned long long)v.memory_real);
    if (v.unmanaged_procs)
        printf("unmanaged:   %u process%s with its credentials but no shim, %s\n",
               v.unmanaged_procs, v.unmanaged_procs == 1 ? "" : "es",
               mib(v.memory_unmanaged >> 20, b));
    printf("processes:   %u\n", v.procs);
    printf("created:     %s\n", when);
    return 0;
}

static int cmd_gpus(const struct global *g, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return bad_usage("gpus takes no arguments");
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    qv_gpu_list_t *l;
    char err[QV_ERR_LEN];
    int rc = qv_gpus(c, &l, err);
    qv_disconnect(&c);
    if (rc < 0)
        return fail("cannot list GPUs: %s", err);
    if (g->json) {
        print_json(json_pack("{s:o, s:f, s:f, s:s}", "gpus", gpus_json(l->gpus, l->count),
                             "oversub_memory", l->oversub_memory, "oversub_share", l->oversub_share,
                             "placement", l->placement));
    } else {
        print_gpu_table(l->gpus, l->count);
        printf("oversubscription: memory x%.2f, share x%.2f; placement: %s\n", l->oversub_memory,
               l->oversub_share, l->placement);
    }
    qv_gpu_list_free(&l);
    return 0;
}

static int cmd_stats(const struct global *g, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return bad_usage("stats takes no arguments");
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    qv_stats_t *s;
    char err[QV_ERR_LEN];
    int rc = qv_stats(c, &s, err);
    qv_disconnect(&c);
    if (rc < 0)
        return fail("cannot read statistics: %s", err);
    if (g->json) {
        json_t *findings = json_array();
        for (size_t i = 0; i < s->nfindings; i++)
            json_array_append_new(findings, finding_json(&s->findings[i]));
        json_t *doc = json_pack("{s:o}", "gpus", gpus_json(s->gpus, s->ngpus));
        totals_json(doc, s);
        json_object_set_new(doc, "findings", findings);
        print_json(doc);
    } else {
        char a[32], b[32], c[32];
        print_gpu_table(s->gpus, s->ngpus);
        printf("vGPUs: %u (%u active); memory reserved %s, used %s, really held %s\n",
               s->vgpus_total, s->vgpus_active, mib(s->memory_reserved_mb, a),
               mib(s->memory_used_mb, b), mib(s->memory_real_mb, c));
        if (s->nfindings)
            printf("audit (%zu finding%s, %llu process%s killed since the start):\n", s->nfindings,
                   s->nfindings == 1 ? "" : "s", (unsigned long long)s->kills,
                   s->kills == 1 ? "" : "es");
        for (size_t i = 0; i < s->nfindings; i++)
            printf("  %-10s %s: %s, for %llu s\n", s->findings[i].kind, s->findings[i].action,
                   s->findings[i].detail, (unsigned long long)s->findings[i].since);
    }
    qv_stats_free(&s);
    return 0;
}

/* ---- run and env ------------------------------------------------------------------- */

/* The path of libqshim.so: $QVGPU_SHIM, else next to this program (the build tree), else
 * the installed bundle's (../lib/qvgpu/current, as make install and the package put it),
 * else ../lib. Resolved: a workload, and what it starts later, keeps preloading its
 * version's file, which upgrades leave in place, whatever `current` names by then. */
static int find_shim(char out[PATH_MAX])
{
    const char *env = getenv("QVGPU_SHIM");
    if (env && *env) {
        if (!realpath(env, out))
            return fail("QVGPU_SHIM=%s: %s", env, strerror(errno));
        return 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        return fail("cannot find this program's path: %s", strerror(errno));
    self[n] = '\0';
    const char *dir = dirname(self);
    const char *tries[] = {"%s/libqshim.so", "%s/../lib/qvgpu/current/libqshim.so",
                           "%s/../lib/libqshim.so"};
    for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, tries[i], dir);
        if (access(path, R_OK) == 0 && realpath(path, out))
            return 0;
    }
    return fail("cannot find libqshim.so next to qgpuctl, in ../lib/qvgpu/current or in ../lib "
                "(set QVGPU_SHIM)");
}

/* The environment a workload of vGPU id needs, as NAME=VALUE strings (5 of them, caller
 * frees each). */
static int workload_env(const struct global *g, const char *id, char *vars[5])
{
    char shim[PATH_MAX];
    if (find_shim(shim))
        return 1;
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    qv_creds_t cr;
    char err[QV_ERR_LEN];
    int rc = qv_creds(c, id, &cr, err);
    qv_disconnect(&c);
    if (rc < 0)
        return fail("cannot get vGPU '%s': %s", id, err);
    /* The arbiter says where tenant.sock is: with --tenant-dir, not in the socket dir
     * (an arbiter before 0.2 does not say: then it is there). */
    const char *dir = cr.tenant_dir[0]    ? cr.tenant_dir
                      : g->socket_dir ? g->socket_dir
                                      : qv_default_socket_dir();
    char abs[PATH_MAX];
    if (!realpath(dir, abs))
        snprintf(abs, sizeof abs, "%s", dir);
    /* LD_PRELOAD: what the caller preloads stays first, then the shim. */
    const char *old = getenv("LD_PRELOAD");
    /* Under AddressSanitizer the runtime must be preloaded before an instrumented shim. */
    const char *asan = qv_asan_runtime();
    if (!asan || (old && strstr(old, "libasan.so")))
        asan = "";
    bool have = old && strstr(old, shim);
    int ok = asprintf(&vars[0], "LD_PRELOAD=%s%s%s%s%s", asan, *asan ? ":" : "", old ? old : "",
                      old && *old && !have ? ":" : "", have ? "" : shim) > 0;
    ok &= asprintf(&vars[1], "QVGPU_VGPU=%s", cr.id) > 0;
    ok &= asprintf(&vars[2], "QVGPU_SECRET=%s", cr.secret) > 0;
    ok &= asprintf(&vars[3], "QVGPU_SOCKET_DIR=%s", abs) > 0;
    ok &= asprintf(&vars[4], "CUDA_VISIBLE_DEVICES=%s", cr.gpu_uuid) > 0;
    return ok ? 0 : fail("out of memory");
}

static int cmd_run(const struct global *g, int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[1], "--") != 0)
        return bad_usage("run needs: run ID -- CMD [ARGS...]");
    char *vars[5];
    if (workload_env(g, argv[0], vars))
        return 1;
    for (int i = 0; i < 5; i++)
        putenv(vars[i]); /* the strings become the environment's */
    execvp(argv[2], &argv[2]);
    int e = errno;
    fail("cannot run '%s': %s", argv[2], strerror(e));
    return e == ENOENT ? 127 : 126;
}

/* Prints NAME=VALUE as a shell export with VALUE single-quoted. */
static void print_export(const char *var)
{
    const char *eq = strchr(var, '=');
    printf("export %.*s='", (int)(eq - var), var);
    for (const char *c = eq + 1; *c; c++) {
        if (*c == '\'')
            fputs("'\\''", stdout);
        else
            putchar(*c);
    }
    puts("'");
}

static int cmd_env(const struct global *g, int argc, char **argv)
{
    if (argc != 1)
        return bad_usage("env takes one vGPU id");
    char *vars[5];
    if (workload_env(g, argv[0], vars))
        return 1;
    for (int i = 0; i < 5; i++) {
        print_export(vars[i]);
        free(vars[i]);
    }
    return 0;
}

/* ---- cdi --------------------------------------------------------------------------- */

/* Prints the file at path to stdout. */
static int print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail("cannot read the CDI spec %s: %s (qgpuctl cdi sync writes it again)", path,
                    strerror(errno));
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
    putchar('\n');
    return 0;
}

/* cdi sync | cdi show ID | cdi devices ID (docs/containers.md). */
static int cmd_cdi(const struct global *g, int argc, char **argv)
{
    bool sync = argc == 1 && strcmp(argv[0], "sync") == 0;
    bool show = argc == 2 && strcmp(argv[0], "show") == 0;
    bool devices = argc == 2 && strcmp(argv[0], "devices") == 0;
    if (!sync && !show && !devices)
        return bad_usage("cdi takes: sync, show ID, or devices ID");
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    char err[QV_ERR_LEN];
    int rc;
    if (sync) {
        unsigned written, removed;
        rc = qv_cdi_sync(c, &written, &removed, err);
        qv_disconnect(&c);
        if (rc < 0)
            return fail("cannot write the CDI specs: %s", err);
        if (g->json)
            print_json(json_pack("{s:i, s:i}", "written", (int)written, "removed", (int)removed));
        else
            printf("CDI specs: %u written, %u stale removed\n", written, removed);
        return 0;
    }
    qv_cdi_device_t d;
    rc = qv_cdi_device(c, argv[1], &d, err);
    qv_disconnect(&c);
    if (rc < 0)
        return fail("cannot show the CDI device of vGPU '%s': %s", argv[1], err);
    if (show)
        return print_file(d.spec_path);
    if (g->json)
        print_json(json_pack("{s:s, s:s, s:s}", "device", d.device, "driver_device",
                             d.driver_device, "spec", d.spec_path));
    else if (d.driver_device[0])
        printf("--device %s --device %s\n", d.device, d.driver_device);
    else
        printf("--device %s\n", d.device);
    return 0;
}

/* ---- moving vGPUs ----------------------------------------------------------------- */

static int cmd_migrate(const struct global *g, int argc, char **argv)
{
    if (argc < 1 || argv[0][0] == '-')
        return bad_usage("migrate needs a vGPU id first");
    const char *target = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--gpu") == 0) {
            if (!(target = value(argc, argv, &i)))
                return USAGE;
        } else {
            return bad_usage("migrate: unknown option '%s'", argv[i]);
        }
    }
    if (!target)
        return bad_usage("migrate needs --gpu INDEX or --gpu UUID");
    int gpu = -1;
    const char *uuid = NULL;
    char *end;
    long v = strtol(target, &end, 10);
    if (strncmp(target, "GPU-", 4) == 0)
        uuid = target;
    else if (end == target || *end || v < 0 || v > 1023)
        return bad_usage("--gpu '%s' is neither a GPU index nor a GPU UUID (GPU-...)", target);
    else
        gpu = (int)v;
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    qv_migration_t *m = calloc(1, sizeof *m);
    char err[QV_ERR_LEN];
    int rc = m ? qv_migrate(c, argv[0], gpu, uuid, m, err) : -ENOMEM;
    qv_disconnect(&c);
    if (rc < 0) {
        free(m);
        return fail("cannot move vGPU '%s' to GPU %s: %s", argv[0], target,
                    rc == -ENOMEM && !m ? "out of memory" : err);
    }
    if (g->json) {
        json_t *procs = json_array();
        for (size_t i = 0; i < m->nprocs; i++)
            json_array_append_new(procs, json_pack("{s:i,s:s,s:f,s:I}", "pid", m->procs[i].pid,
                                                   "fate", m->procs[i].fate, "paused_ms",
                                                   m->procs[i].paused_ms, "bytes",
                                                   (json_int_t)m->procs[i].bytes));
        print_json(json_pack("{s:o,s:i,s:i,s:f,s:s,s:o}", "vgpu", vgpu_json(&m->vgpu), "from",
                             m->from, "to", m->to, "ms", m->ms, "text", m->text, "procs", procs));
    } else {
        puts(m->text);
    }
    free(m);
    return 0;
}

static int cmd_balance(const struct global *g, int argc, char **argv)
{
    bool dry = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0)
            dry = true;
        else
            return bad_usage("balance: unknown option '%s'", argv[i]);
    }
    qv_client_t *c = connect_or_say(g);
    if (!c)
        return 1;
    qv_balance_plan_t *plan;
    char err[QV_ERR_LEN];
    int rc = qv_balance(c, dry, &plan, err);
    qv_disconnect(&c);
    if (rc < 0)
        return fail("cannot balance the GPUs: %s", err);
    int failed = 0;
    if (g->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < plan->count; i++) {
            const qv_balance_move_t *mv = &plan->moves[i];
            json_t *o = json_pack("{s:s,s:i,s:i,s:s,s:b}", "vgpu", mv->vgpu, "from", mv->from,
                                  "to", mv->to, "why", mv->why, "done", mv->done);
            if (!plan->dry_run)
                json_object_set_new(o, "text", json_string(mv->text));
            json_array_append_new(a, o);
        }
        print_json(json_pack("{s:b,s:o}", "dry_run", plan->dry_run, "moves", a));
    } else if (!plan->count) {
        puts("nothing to move: no GPU is over the high mark while another is under the low one");
    } else {
        printf("%-10s %4s %4s  %s\n", "VGPU", "FROM", "TO", plan->dry_run ? "WHY" : "WHY / RESULT");
        for (size_t i = 0; i < plan->count; i++) {
            const qv_balance_move_t *mv = &plan->moves[i];
            printf("%-10s %4d %4d  %s\n", mv->vgpu, mv->from, mv->to, mv->why);
            if (!plan->dry_run)
                printf("%-10s %4s %4s  %s\n", "", "", "", mv->text);
        }
    }
    for (size_t i = 0; !plan->dry_run && i < plan->count; i++)
        failed += !plan->moves[i].done;
    qv_balance_plan_free(&plan);
    return failed ? 1 : 0;
}

/* ---- main -------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*fn)(const struct global *g, int argc, char **argv);
} commands[] = {
    {"create", cmd_create}, {"destroy", cmd_destroy}, {"resize", cmd_resize}, {"list", cmd_list},
    {"info", cmd_info},     {"gpus", cmd_gpus},       {"stats", cmd_stats},   {"run", cmd_run},
    {"env", cmd_env},       {"gc", cmd_gc},           {"cdi", cmd_cdi},
    {"migrate", cmd_migrate}, {"balance", cmd_balance},
};

int main(int argc, char **argv)
{
    struct global g = {NULL, false};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--socket-dir") == 0) {
            if (!(g.socket_dir = value(argc, argv, &i)))
                return USAGE;
        } else if (strcmp(argv[i], "--json") == 0) {
            g.json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            return bad_usage("unknown option '%s'", argv[i]);
        }
    }
    if (i >= argc)
        return bad_usage("no command given");
    const char *name = argv[i++];
    /* --json may also follow the command (not inside run's command line) */
    int n = 0;
    char **rest = argv + i;
    for (int k = i; k < argc; k++) {
        if (strcmp(argv[k], "--") == 0) {
            while (k < argc)
                rest[n++] = argv[k++];
            break;
        }
        if (strcmp(argv[k], "--json") == 0)
            g.json = true;
        else
            rest[n++] = argv[k];
    }
    rest[n] = NULL;
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        if (strcmp(commands[c].name, name) == 0)
            return commands[c].fn(&g, n, rest);
    }
    return bad_usage("unknown command '%s'", name);
}
