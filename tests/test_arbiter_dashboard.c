/* test_arbiter_dashboard.c - the dashboard at / in a real browser: headless Chromium
 * loads it from a real arbiter on the simulated GPU and the test reads the DOM it built
 * (a row per vGPU, charts with data points, what it says when there is nothing to show
 * or nobody answers), and leaves a screenshot in the build directory for a person. */
#include "tests/http_support.h"
#include "tests/shim_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHROMIUM "/usr/bin/chromium"

/* Runs headless Chromium on url with a fresh profile, letting the page run 5 s of its
 * own (virtual) time, then: with shot, saves a screenshot there and returns NULL;
 * without, returns the DOM (caller frees). */
static char *chromium(const char *url, const char *shot)
{
    need_tool(CHROMIUM, "chromium");
    char *dir = qt_tmpdir(), *profile, *out_flag = NULL;
    cr_assert(asprintf(&profile, "--user-data-dir=%s", dir) > 0);
    if (shot)
        cr_assert(asprintf(&out_flag, "--screenshot=%s", shot) > 0);
    /* As root Chromium needs --no-sandbox; the rest keeps it off the network and quick. */
    const char *argv[] = {CHROMIUM,
                          "--headless",
                          "--no-sandbox",
                          "--disable-gpu",
                          "--disable-quic",
                          "--no-first-run",
                          "--disable-background-networking",
                          "--disable-component-update",
                          "--disable-sync",
                          profile,
                          "--window-size=1280,1000",
                          "--virtual-time-budget=5000",
                          shot ? out_flag : "--dump-dom",
                          url,
                          NULL};
    char *out = NULL, *err = NULL;
    int rc = qt_run(argv, NULL, 60000, &out, &err);
    cr_assert_eq(rc, 0, "chromium exited %d: %s", rc, err);
    free(err), free(dir), free(profile), free(out_flag);
    if (shot) {
        free(out);
        return NULL;
    }
    return out;
}

/* The start tag of the element whose attribute attr is value, e.g. tag_of(dom,
 * "data-vgpu", "vg-1"), copied into tag; false when there is none. */
static bool tag_of(const char *dom, const char *attr, const char *value, char *tag, size_t cap)
{
    char needle[128];
    snprintf(needle, sizeof needle, "%s=\"%s\"", attr, value);
    const char *at = strstr(dom, needle);
    if (!at)
        return false;
    const char *start = at;
    while (start > dom && *start != '<')
        start--;
    size_t n = strcspn(start, ">") + 1;
    snprintf(tag, cap, "%.*s", (int)n, start);
    return true;
}

/* The number in attribute attr of tag (e.g. data-points="12"); -1 when absent. */
static long attr_num(const char *tag, const char *attr)
{
    char needle[64];
    snprintf(needle, sizeof needle, "%s=\"", attr);
    const char *at = strstr(tag, needle);
    return at ? strtol(at + strlen(needle), NULL, 10) : -1;
}

/* Whether the element with id is in dom and not hidden. */
static bool shown(const char *dom, const char *id)
{
    char tag[512];
    cr_assert(tag_of(dom, "id", id, tag, sizeof tag), "no #%s in the page", id);
    return strstr(tag, " hidden") == NULL;
}

/* The text right after the start tag of the element with id. */
static void text_of(const char *dom, const char *id, char *text, size_t cap)
{
    char tag[512];
    cr_assert(tag_of(dom, "id", id, tag, sizeof tag), "no #%s in the page", id);
    const char *at = strstr(dom, tag) + strlen(tag);
    snprintf(text, cap, "%.*s", (int)strcspn(at, "<"), at);
}

static bool busy_both(void *arg)
{
    qt_arbiter_t *arb = arg;
    json_t *l = ctl_json(arb, "list", NULL);
    json_t *vgpus = json_object_get(l, "vgpus");
    int busy = 0;
    for (size_t i = 0; i < json_array_size(vgpus); i++) {
        json_t *v = json_array_get(vgpus, i);
        busy += json_integer_value(json_object_get(v, "procs")) == 1 &&
                json_number_value(json_object_get(v, "util")) > 5;
    }
    json_decref(l);
    return busy == 2;
}

TestSuite(qa_dashboard, .init = http_require);

Test(qa_dashboard, shows_a_row_and_a_live_chart_per_vgpu_while_two_workloads_run)
{
    char addr[64], url[96];
    need_tool("/usr/share/javascript/chart.js", "libjs-chart.js");
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    qts_vgpu_t a, b;
    qts_vgpu_create(arb, &a, "--vm", "alpha", "--profile", "Q2", "--gpu", "0", NULL);
    qts_vgpu_create(arb, &b, "--vm", "beta", "--profile", "Q4", "--gpu", "0", NULL);
    qts_env_t ea, eb;
    qts_env_of(&ea, arb, &a);
    qts_env_of(&eb, arb, &b);
    /* each floods GPU 0 with 2 ms kernels for a minute, holding some memory */
    qt_proc_t *wa = qts_start(&ea, "init", "alloc:cuMemAlloc_v2:direct:300M", "ready",
                              "spin:2000000:4:60000", NULL);
    qt_proc_t *wb = qts_start(&eb, "init", "alloc:cuMemAlloc_v2:direct:700M", "ready",
                              "spin:2000000:4:60000", NULL);
    cr_assert(qts_wait_line(wa, "ready", 20000) && qts_wait_line(wb, "ready", 20000),
              "the workloads did not start: %s %s", qt_proc_stderr(wa), qt_proc_stderr(wb));
    cr_assert(qt_wait_until(busy_both, arb, 20000), "both vGPUs should be busy");
    qt_sleep_ms(2500); /* a few history samples with both running */
    snprintf(url, sizeof url, "http://%s/", addr);
    char *dom = chromium(url, NULL);

    char tag[1024], text[256];
    cr_assert(tag_of(dom, "data-vgpu", a.id, tag, sizeof tag), "no row for %s:\n%.3000s", a.id,
              dom);
    cr_assert(tag_of(dom, "data-vgpu", b.id, tag, sizeof tag), "no row for %s", b.id);
    cr_assert_null(strstr(dom, "data-vgpu=\"vg-3\""));
    text_of(dom, "status", text, sizeof text);
    cr_assert_str_eq(text, "live");
    cr_assert(!shown(dom, "charts-off"), "Chart.js should be served (libjs-chart.js)");
    cr_assert(!shown(dom, "banner"));
    cr_assert(!shown(dom, "no-vgpus"));
    cr_assert(strstr(dom, "300 MiB / 2 GiB") && strstr(dom, "700 MiB / 4 GiB"),
              "memory against quota per vGPU");
    cr_assert(tag_of(dom, "aria-label", "utilisation of GPU 0", tag, sizeof tag));
    cr_assert(strstr(tag, "<canvas"), "%s", tag);
    cr_assert_eq(attr_num(tag, "data-vgpus"), 2, "%s", tag);
    cr_assert_geq(attr_num(tag, "data-points"), 4, "two series of at least two samples: %s", tag);
    cr_assert(strstr(tag, "height=\""), "Chart.js drew into it: %s", tag);
    cr_assert(tag_of(dom, "aria-label", "utilisation of GPU 1", tag, sizeof tag));
    cr_assert_eq(attr_num(tag, "data-vgpus"), 0);
    free(dom);

    char *shot = qt_build_path("dashboard.png");
    unlink(shot);
    chromium(url, shot);
    struct stat st;
    cr_assert(stat(shot, &st) == 0 && st.st_size > 10000, "no screenshot at %s", shot);
    FILE *f = fopen(shot, "rb");
    unsigned char magic[8] = {0};
    cr_assert(f && fread(magic, 1, 8, f) == 8);
    fclose(f);
    cr_assert(memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0);
    fprintf(stderr, "dashboard screenshot: %s\n", shot);
    free(shot);
    qt_proc_destroy(&wa);
    qt_proc_destroy(&wb);
    qt_arbiter_destroy(&arb);
}

Test(qa_dashboard, says_there_are_no_vgpus_yet)
{
    char addr[64], url[96], text[256];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    snprintf(url, sizeof url, "http://%s/", addr);
    char *dom = chromium(url, NULL);
    cr_assert(shown(dom, "no-vgpus"), "%.3000s", dom);
    cr_assert(strstr(dom, "qgpuctl create"), "it says how to make one");
    cr_assert(!shown(dom, "vgpus"), "no empty table");
    text_of(dom, "status", text, sizeof text);
    cr_assert_str_eq(text, "live");
    char tag[1024];
    for (int g = 0; g < 3; g++) {
        char label[64];
        snprintf(label, sizeof label, "utilisation of GPU %d", g);
        cr_assert(tag_of(dom, "aria-label", label, tag, sizeof tag), "a card per GPU: %s", label);
        cr_assert_eq(attr_num(tag, "data-points"), 0);
    }
    free(dom);
    qt_arbiter_destroy(&arb);
}

/* Saves what the arbiter serves at path into dir (same relative path). */
static void save(const char *addr, const char *path, const char *dir)
{
    http_resp_t r = http_get(addr, path, 5000);
    cr_assert_eq(r.status, 200, "%s: %d", path, r.status);
    char *file;
    cr_assert(asprintf(&file, "%s%s", dir, strcmp(path, "/") == 0 ? "/index.html" : path) > 0);
    char *slash = strrchr(file, '/');
    *slash = '\0';
    mkdir(file, 0755);
    *slash = '/';
    FILE *f = fopen(file, "wb");
    cr_assert(f && fwrite(r.body, 1, r.len, f) == r.len && fclose(f) == 0);
    free(file);
    http_resp_free(&r);
}

Test(qa_dashboard, says_so_when_the_arbiter_does_not_answer)
{
    char addr[64], url[512], text[512];
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, NULL, addr);
    /* The page as a browser has it, with no arbiter behind it any more. */
    char *dir = qt_tmpdir();
    const char *files[] = {"/", "/dashboard.js", "/dashboard.css"};
    for (size_t i = 0; i < 3; i++)
        save(addr, files[i], dir);
    qt_arbiter_destroy(&arb);
    snprintf(url, sizeof url, "file://%s/index.html", dir);
    char *dom = chromium(url, NULL);
    text_of(dom, "status", text, sizeof text);
    cr_assert_str_eq(text, "arbiter not answering", "%.3000s", dom);
    cr_assert(shown(dom, "banner"));
    text_of(dom, "banner", text, sizeof text);
    cr_assert(strstr(text, "has not answered since") && strstr(text, "Retrying"), "%s", text);
    free(dom);
    free(dir);
}

Test(qa_dashboard, says_how_to_get_charts_when_chartjs_is_missing)
{
    char addr[64], url[96], text[512];
    const char *env[] = {"QVGPU_CHARTJS=/nonexistent/chart.js", NULL};
    qt_arbiter_t *arb = http_arbiter(CTL_GPUS, NULL, env, addr);
    qts_vgpu_t a;
    qts_vgpu_create(arb, &a, "--vm", "alpha", "--profile", "Q1", NULL);
    snprintf(url, sizeof url, "http://%s/", addr);
    char *dom = chromium(url, NULL);
    cr_assert(shown(dom, "charts-off"), "%.3000s", dom);
    text_of(dom, "charts-off", text, sizeof text);
    cr_assert(strstr(text, "apt-get install libjs-chart.js"), "%s", text);
    char tag[512];
    cr_assert(tag_of(dom, "data-vgpu", a.id, tag, sizeof tag), "the table still fills");
    text_of(dom, "status", text, sizeof text);
    cr_assert_str_eq(text, "live");
    free(dom);
    qt_arbiter_destroy(&arb);
}
