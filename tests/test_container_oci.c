/* test_container_oci.c - the CDI edits the runtime wrapper applies to a bundle's
 * config.json: the same rules as podman's (a variable replaces one of its name, a mount
 * one of its destination; hooks and device nodes are added), on untrusted input. */
#include "container/oci.h"
#include "tests/harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    cr_assert_not_null(j, "%s: %s", text, je.text);
    return j;
}

static const char *config_text =
    "{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"sh\"],\"env\":[\"PATH=/bin\","
    "\"LD_PRELOAD=/usr/lib/libjemalloc.so\",\"QVGPU_VGPU=vg-7\"]},\"root\":{\"path\":\"rootfs\"},"
    "\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"
    "{\"destination\":\"/run/qvgpu\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"}],"
    "\"hooks\":{\"createContainer\":[{\"path\":\"/usr/bin/recorder\"}]}}";

static const char *spec_text =
    "{\"cdiVersion\":\"0.5.0\",\"kind\":\"qvgpu.io/vgpu\",\"devices\":[{\"name\":\"vg-7\","
    "\"containerEdits\":{\"env\":[\"QVGPU_VGPU=vg-7\",\"LD_PRELOAD=/opt/qvgpu/libqshim.so\"],"
    "\"mounts\":[{\"hostPath\":\"/run/t\",\"containerPath\":\"/run/qvgpu\",\"type\":\"bind\","
    "\"options\":[\"ro\",\"rbind\"]}],\"hooks\":[{\"hookName\":\"createContainer\",\"path\":"
    "\"/b/qvgpu-container-hook\",\"args\":[\"qvgpu-container-hook\",\"preflight\"]}],"
    "\"deviceNodes\":[{\"path\":\"/dev/qvgpu-null\",\"hostPath\":\"/dev/null\"}]}}]}";

Test(container_oci, the_edits_replace_by_name_and_destination_and_add_hooks_and_nodes)
{
    json_t *config = parse(config_text), *spec = parse(spec_text);
    char err[QC_ERR_LEN];
    cr_assert_str_eq(qc_oci_vgpu(config), "vg-7");
    cr_assert_eq(qc_oci_apply(config, spec, "vg-7", err), 0, "%s", err);
    json_t *env = json_object_get(json_object_get(config, "process"), "env");
    cr_assert_eq(json_array_size(env), 3, "PATH kept, two replaced, none doubled");
    cr_assert_str_eq(json_string_value(json_array_get(env, 0)), "PATH=/bin");
    cr_assert_str_eq(qc_oci_env(config, "LD_PRELOAD"), "/opt/qvgpu/libqshim.so");
    json_t *mounts = json_object_get(config, "mounts");
    cr_assert_eq(json_array_size(mounts), 2);
    json_t *m = json_array_get(mounts, 1);
    cr_assert_str_eq(json_string_value(json_object_get(m, "destination")), "/run/qvgpu");
    cr_assert_str_eq(json_string_value(json_object_get(m, "source")), "/run/t");
    cr_assert_str_eq(json_string_value(json_object_get(m, "type")), "bind");
    cr_assert_eq(json_array_size(json_object_get(m, "options")), 2);
    json_t *hooks = json_object_get(json_object_get(config, "hooks"), "createContainer");
    cr_assert_eq(json_array_size(hooks), 2, "the image's hook kept, ours after it");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(hooks, 1), "path")),
                     "/b/qvgpu-container-hook");
    json_t *dev = json_array_get(json_object_get(json_object_get(config, "linux"), "devices"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(dev, "path")), "/dev/qvgpu-null");
    cr_assert_str_eq(json_string_value(json_object_get(dev, "type")), "c");
    cr_assert_eq(json_integer_value(json_object_get(dev, "major")), 1, "/dev/null is 1:3");
    cr_assert_eq(json_integer_value(json_object_get(dev, "minor")), 3);
    json_t *allow = json_array_get(
        json_object_get(json_object_get(json_object_get(config, "linux"), "resources"), "devices"),
        0);
    cr_assert(json_is_true(json_object_get(allow, "allow")));
    cr_assert_str_eq(json_string_value(json_object_get(allow, "access")), "rwm");
    json_decref(config);
    json_decref(spec);
}

Test(container_oci, the_vgpu_comes_from_the_environment_or_an_annotation)
{
    json_t *c = parse("{\"process\":{\"env\":[\"A=1\"]},\"annotations\":{\"qvgpu.io/vgpu\":"
                      "\"vg-3\"}}");
    cr_assert_str_eq(qc_oci_vgpu(c), "vg-3");
    json_decref(c);
    c = parse("{\"process\":{\"env\":[\"QVGPU_VGPU=\"]}}");
    cr_assert_null(qc_oci_vgpu(c), "an empty value asks for nothing");
    json_decref(c);
    c = parse("{\"process\":{\"env\":[\"QVGPU_VGPUX=vg-1\", 7]}}");
    cr_assert_null(qc_oci_vgpu(c));
    json_decref(c);
}

Test(container_oci, a_missing_device_or_a_malformed_spec_is_an_error_that_says_so)
{
    json_t *config = parse(config_text);
    char err[QC_ERR_LEN];
    json_t *spec = parse(spec_text);
    cr_assert_eq(qc_oci_apply(config, spec, "vg-8", err), -ENOENT);
    cr_assert(strstr(err, "no device 'vg-8'"), "%s", err);
    json_decref(spec);
    const char *bad[] = {
        "{\"devices\":[{\"name\":\"vg-7\",\"containerEdits\":{\"env\":\"A=1\"}}]}",
        "{\"devices\":[{\"name\":\"vg-7\",\"containerEdits\":{\"env\":[\"=1\"]}}]}",
        "{\"devices\":[{\"name\":\"vg-7\",\"containerEdits\":{\"mounts\":[{\"hostPath\":\"/"
        "x\"}]}}]}",
        "{\"devices\":[{\"name\":\"vg-7\",\"containerEdits\":{\"hooks\":[{\"hookName\":\"later\","
        "\"path\":\"/x\"}]}}]}",
        "{\"devices\":[{\"name\":\"vg-7\",\"containerEdits\":{\"deviceNodes\":[{\"path\":"
        "\"/etc/passwd\"}]}}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        spec = parse(bad[i]);
        err[0] = '\0';
        cr_assert_eq(qc_oci_apply(config, spec, "vg-7", err), -EINVAL, "case %zu", i);
        cr_assert(strlen(err) > 10 && !strchr(err, '\n'), "case %zu: '%s'", i, err);
        json_decref(spec);
    }
    json_decref(config);
}

Test(container_oci, the_root_is_found_against_the_bundle)
{
    json_t *c = parse(config_text);
    char root[256];
    cr_assert_eq(qc_oci_root(c, "/b/ctr", root, sizeof root), 0);
    cr_assert_str_eq(root, "/b/ctr/rootfs");
    json_decref(c);
    c = parse("{\"root\":{\"path\":\"/abs/root\"}}");
    cr_assert_eq(qc_oci_root(c, "/b/ctr", root, sizeof root), 0);
    cr_assert_str_eq(root, "/abs/root");
    json_decref(c);
    c = parse("{}");
    cr_assert_eq(qc_oci_root(c, "/b", root, sizeof root), -EINVAL);
    json_decref(c);
}
