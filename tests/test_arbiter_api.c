/* test_arbiter_api.c - the JSON API's documents, rendered from views of made-up hosts. */
#include "arbiter/api.h"
#include "proto/units.h"
#include "tests/view_support.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The document at path, parsed; fails the test when it is not there or not JSON. */
static json_t *doc(const qa_view_t *v, const char *path)
{
    char *text;
    size_t len;
    cr_assert_eq(qa_api_render(v, path, &text, &len), 0, "%s", path);
    cr_assert_eq(strlen(text), len);
    json_error_t e;
    json_t *j = json_loadb(text, len, 0, &e);
    cr_assert_not_null(j, "%s: %s in %s", path, e.text, text);
    free(text);
    return j;
}

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    cr_assert(json_is_number(v), "no number '%s'", key);
    return json_number_value(v);
}

Test(qa_api, a_vgpu_has_the_documented_fields_and_qgpuctls)
{
    qa_host_t *h = view_host();
    qa_vgpu_t *a = view_vgpu(h, "web-1", "Q2", 0);
    a->util = 25;
    a->mem_used = 100 * QP_MIB;
    a->mem_reserved = 128 * QP_MIB;
    a->procs = 1;
    a->refused = 3;
    a->leases = 9;
    qa_view_t *v = view_of(h);
    json_t *o = doc(v, "/api/v1/vgpus/vg-1");
    cr_assert_str_eq(json_string_value(json_object_get(o, "id")), "vg-1");
    cr_assert_str_eq(json_string_value(json_object_get(o, "vm")), "web-1");
    cr_assert_str_eq(json_string_value(json_object_get(o, "vm_id")), "web-1");
    cr_assert_str_eq(json_string_value(json_object_get(o, "profile")), "Q2");
    cr_assert_str_eq(json_string_value(json_object_get(o, "gpu_uuid")), "GPU-aaaa");
    cr_assert_eq(num(o, "gpu"), 0);
    cr_assert_eq(num(o, "memory_mb"), 2048);
    cr_assert_eq(num(o, "cuda_cores"), 512);
    cr_assert_eq(num(o, "share"), 20);
    cr_assert_eq(num(o, "limit"), 0);
    cr_assert_float_eq(num(o, "util"), 25, 1e-9);
    cr_assert_float_eq(num(o, "utilization"), 0.25, 1e-9, "the product's utilization is 0..1");
    cr_assert_eq(num(o, "memory_used"), 100.0 * QP_MIB);
    cr_assert_eq(num(o, "memory_used_mb"), 100);
    cr_assert_eq(num(o, "memory_reserved"), 128.0 * QP_MIB);
    cr_assert_eq(num(o, "procs"), 1);
    cr_assert_eq(num(o, "created"), 1700000000);
    cr_assert_eq(num(o, "allocations_refused"), 3);
    cr_assert_eq(num(o, "leases_granted"), 9);
    cr_assert_null(json_object_get(o, "secret"), "no page shows a secret");
    json_decref(o);
    qa_view_unref(&v);
    qa_host_destroy(&h);
}

Test(qa_api, a_gpu_has_the_documented_fields_and_qgpuctls)
{
    qa_host_t *h = view_host();
    view_vgpu(h, "a", "Q2", 1);
    qa_gpu_t *g = qa_host_gpu(h, 1);
    g->memory_used = 1024 * QP_MIB;
    g->util = 40;
    g->leased = 30;
    g->hung = 1;
    qa_view_t *v = view_of(h);
    json_t *d = doc(v, "/api/v1/gpus");
    json_t *gpus = json_object_get(d, "gpus");
    cr_assert_eq(json_array_size(gpus), 2);
    json_t *o = json_array_get(gpus, 1);
    cr_assert_eq(num(o, "index"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(o, "name")), "NVIDIA GeForce GTX 1050");
    cr_assert_str_eq(json_string_value(json_object_get(o, "uuid")), "GPU-bbbb");
    cr_assert_eq(num(o, "total_memory_mb"), 4096);
    cr_assert_eq(num(o, "memory_total_mb"), 4096);
    cr_assert_eq(num(o, "used_memory_mb"), 1024);
    cr_assert_eq(num(o, "memory_used_mb"), 1024);
    cr_assert_eq(num(o, "memory_reserved_mb"), 2048);
    cr_assert_float_eq(num(o, "memory_util"), 25, 1e-9);
    cr_assert_float_eq(num(o, "memory_utilization"), 0.25, 1e-9);
    cr_assert_float_eq(num(o, "util"), 40, 1e-9);
    cr_assert_float_eq(num(o, "utilization"), 0.4, 1e-9);
    cr_assert_eq(num(o, "vgpu_count"), 1);
    cr_assert_eq(num(o, "vgpus"), 1);
    cr_assert_eq(num(o, "share_reserved"), 20);
    cr_assert_eq(num(o, "sms"), 10);
    cr_assert_eq(num(o, "cuda_cores"), 1280);
    cr_assert_float_eq(num(o, "leased"), 30, 1e-9);
    cr_assert_eq(num(o, "hung"), 1);
    json_decref(d);
    qa_view_unref(&v);
    qa_host_destroy(&h);
}

Test(qa_api, stats_count_vgpus_and_active_ones)
{
    qa_host_t *h = view_host();
    qa_vgpu_t *a = view_vgpu(h, "a", "Q2", 0);
    view_vgpu(h, "b", "Q1", 0);
    view_vgpu(h, "c", "Q1", 1);
    a->procs = 2;
    a->mem_used = 512 * QP_MIB;
    qa_view_t *v = view_of(h);
    json_t *o = doc(v, "/api/v1/stats");
    cr_assert_eq(num(o, "total_vgpus"), 3);
    cr_assert_eq(num(o, "vgpus_total"), 3);
    cr_assert_eq(num(o, "active_vgpus"), 1);
    cr_assert_eq(num(o, "vgpus_active"), 1);
    cr_assert_eq(num(o, "memory_reserved_mb"), 4096);
    cr_assert_eq(num(o, "memory_used_mb"), 512);
    cr_assert_eq(num(o, "tenant_connections"), 3);
    cr_assert_geq(num(o, "uptime_seconds"), 0);
    cr_assert_eq(json_array_size(json_object_get(o, "gpus")), 2);
    json_decref(o);
    json_t *l = doc(v, "/api/v1/vgpus");
    json_t *vgpus = json_object_get(l, "vgpus");
    cr_assert_eq(json_array_size(vgpus), 3);
    const char *ids[] = {"vg-1", "vg-2", "vg-3"};
    for (size_t i = 0; i < 3; i++)
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(vgpus, i), "id")), ids[i],
                         "creation order");
    json_decref(l);
    qa_view_unref(&v);
    qa_host_destroy(&h);
}

Test(qa_api, names_no_document_for_unknown_paths_or_vgpus)
{
    qa_host_t *h = view_host();
    view_vgpu(h, "a", "Q1", 0);
    qa_view_t *v = view_of(h);
    const char *bad[] = {"/api/v1/vgpus/vg-2",  "/api/v1/vgpus/", "/api/v1/nope",
                         "/api/v2/gpus",        "/api/v1/gpus/0", "/metrics",
                         "/api/v1/vgpus/vg-1/x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *text = NULL;
        size_t len;
        cr_assert_eq(qa_api_render(v, bad[i], &text, &len), -ENOENT, "%s", bad[i]);
        cr_assert_null(text);
    }
    qa_view_unref(&v);
    qa_host_destroy(&h);
}

Test(qa_api, a_vm_name_that_is_not_utf8_still_gives_json)
{
    qa_host_t *h = view_host();
    view_vgpu(h, "caf\xe9 \"vm\"", "Q1", 0); /* Latin-1, printable, not UTF-8 */
    qa_view_t *v = view_of(h);
    json_t *o = doc(v, "/api/v1/vgpus/vg-1");
    cr_assert_str_eq(json_string_value(json_object_get(o, "vm")), "caf? \"vm\"");
    json_decref(o);
    char *text;
    size_t len;
    cr_assert_eq(qa_api_error("no \"such\" thing", &text, &len), 0);
    cr_assert_str_eq(text, "{\"error\":\"no \\\"such\\\" thing\"}");
    free(text);
    qa_view_unref(&v);
    qa_host_destroy(&h);
}
