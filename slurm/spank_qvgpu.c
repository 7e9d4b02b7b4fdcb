/* spank_qvgpu.c - the SPANK plugin: `--vgpu=PROFILE` puts a Slurm job into its own vGPU.
 *
 * Where each part runs (Slurm 22.05):
 *   srun/sbatch/salloc (local, allocator): slurm_spank_init registers --vgpu; its callback
 *     checks the value's syntax only (a login node may reach no arbiter) and refuses a bad
 *     one with one line.
 *   job prolog (a slurmstepd of its own, as root, once per job and node; at allocation with
 *     PrologFlags=Alloc): reads the option with spank_option_getopt, runs `qgpuctl create`
 *     for VM slurm-<jobid> (on the GPU Slurm gave the job, SLURM_JOB_GPUS, when it asked
 *     for one), then `qgpuctl env`, and writes what the steps need into a root-only file.
 *   each step's slurmstepd (remote, root): slurm_spank_init_post_opt reads that file;
 *     slurm_spank_task_init (in each task, as the user, after Slurm set its own GPU
 *     variables) sets QVGPU_*, CUDA_VISIBLE_DEVICES and LD_PRELOAD, or refuses to start the
 *     task with the reason when the job asked for a vGPU and has none.
 *   job epilog (root, once per job and node, whatever ended the job): `qgpuctl destroy
 *     --vm slurm-<jobid>`; nothing left is success.
 * Failure policy: a job that asked for a vGPU never runs without one, and the node is never
 * drained for it: the prolog and epilog always succeed (a failing prolog or epilog of a
 * required plugin drains the node), and the refusal happens in the tasks, whose failure
 * only fails the job. The prolog fails (and the node drains) only when it cannot write to
 * its own state directory, a fault of the node.
 * The arbiter is reached only through qgpuctl (slurm/command.c): no ZeroMQ in Slurm's
 * processes. Each process that loads the plugin is single-threaded where SPANK calls it. */
#include "slurm/command.h"
#include "slurm/config.h"
#include "slurm/record.h"
#include "slurm/spec.h"

#include <errno.h>
#include <slurm/slurm.h>
#include <slurm/spank.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

/* What Slurm looks up (SPANK_PLUGIN(qvgpu, 1), written out to be exported). */
EXPORT const char plugin_name[] = "qvgpu";
EXPORT const char plugin_type[] = "spank";
EXPORT const unsigned int plugin_version = SLURM_VERSION_NUMBER;
EXPORT const unsigned int spank_plugin_version = 1;

/* The plugin's state in the process that loaded it. SPANK hands callbacks no context of
 * ours (an option callback gets only its value), so it lives here; nothing else writes it. */
static struct {
    qsl_config_t cfg; /* plugstack.conf arguments, from slurm_spank_init */
    bool asked;       /* --vgpu was given to this srun/sbatch/salloc or step */
    enum {
        JOB_PLAIN,   /* remote: the job has no vGPU and asked for none */
        JOB_READY,   /* remote: rec holds the job's vGPU */
        JOB_REFUSED, /* remote: the tasks must not run; why says why */
    } job;
    qsl_record_t rec;      /* remote: the job's record */
    char why[QSL_ERR_LEN]; /* remote, JOB_REFUSED: one line for the user */
} plugin;

static int option_cb(int val, const char *optarg, int remote);

static struct spank_option vgpu_option = {
    "vgpu",
    "PROFILE",
    "run the job in its own qvgpu vGPU: PROFILE is Q1, Q2, Q4, Q8 (1-8 GiB, 10-80% of a GPU) "
    "or memory=SIZE,share=PCT[,limit=PCT]",
    1,
    0,
    option_cb,
};

/* Checks the value; the submit side refuses the job with the reason in one line. On the
 * compute node the value was checked at submission; it is checked again, since the
 * environment it comes through is the user's. */
static int option_cb(int val, const char *optarg, int remote)
{
    (void)val;
    qsl_spec_t spec;
    char err[QSL_ERR_LEN];
    plugin.asked = true;
    if (qsl_spec_parse(optarg, plugin.cfg.profiles, &spec, err) < 0) {
        slurm_error("%s", err);
        if (remote) {
            plugin.job = JOB_REFUSED;
            qsl_say(plugin.why, "%s", err);
        }
        return -1;
    }
    return 0;
}

EXPORT int slurm_spank_init(spank_t sp, int ac, char **av)
{
    char err[QSL_ERR_LEN];
    spank_context_t ctx = spank_context();
    if (qsl_config_parse(ac, av, &plugin.cfg, err) < 0) {
        slurm_error("%s", err);
        return -1;
    }
    if (ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR && ctx != S_CTX_REMOTE)
        return 0;
    /* In every context that sees the option: the remote one calls the callback after this
     * and before slurm_spank_init_post_opt. */
    spank_err_t rc = spank_option_register(sp, &vgpu_option);
    if (rc != ESPANK_SUCCESS) {
        slurm_error("spank_qvgpu: cannot register --vgpu: %s", spank_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- the steps ---------------------------------------------------------------------- */

EXPORT int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    uint32_t job;
    char err[QSL_ERR_LEN];
    if (spank_remote(sp) != 1 || plugin.job == JOB_REFUSED)
        return 0;
    if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS) {
        slurm_error("spank_qvgpu: no job id in this step");
        return -1;
    }
    int rc = qsl_record_read(plugin.cfg.state_dir, job, &plugin.rec, err);
    if (rc == -ENOENT && !plugin.asked)
        return 0;
    plugin.job = JOB_REFUSED;
    if (rc == -ENOENT)
        snprintf(plugin.why, sizeof plugin.why,
                 "qvgpu: job %u has no vGPU on this node: the job prolog made none (ask for "
                 "--vgpu when the job is submitted, not only for a step)",
                 job);
    else if (rc < 0)
        qsl_say(plugin.why, "qvgpu: job %u: %s", job, err);
    else if (!plugin.rec.vgpu[0])
        qsl_say(plugin.why, "%s", plugin.rec.error);
    else
        plugin.job = JOB_READY;
    if (plugin.job == JOB_REFUSED)
        slurm_error("%s", plugin.why);
    return 0;
}

static int set(spank_t sp, const char *var, const char *value)
{
    spank_err_t rc = spank_setenv(sp, var, value, 1);
    if (rc != ESPANK_SUCCESS) {
        fprintf(stderr, "qvgpu: cannot set %s for the task: %s\n", var, spank_strerror(rc));
        return -1;
    }
    return 0;
}

/* In each task, as the user, just before exec: stdout and stderr are the job's output. */
EXPORT int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
    (void)ac;
    (void)av;
    if (plugin.job == JOB_PLAIN)
        return 0;
    if (plugin.job == JOB_REFUSED) {
        fprintf(stderr, "%s\n", plugin.why);
        fflush(stderr);
        return -1;
    }
    char user[8192], preload[sizeof user + sizeof plugin.rec.preload];
    if (spank_getenv(sp, "LD_PRELOAD", user, sizeof user) != ESPANK_SUCCESS)
        user[0] = '\0';
    if (qsl_record_preload(&plugin.rec, user, preload, sizeof preload) < 0) {
        fprintf(stderr, "qvgpu: LD_PRELOAD is too long to add the qvgpu shim\n");
        return -1;
    }
    if (set(sp, "QVGPU_VGPU", plugin.rec.vgpu) || set(sp, "QVGPU_SECRET", plugin.rec.secret) ||
        set(sp, "QVGPU_SOCKET_DIR", plugin.rec.socket_dir) ||
        set(sp, "CUDA_VISIBLE_DEVICES", plugin.rec.gpu) || set(sp, "LD_PRELOAD", preload))
        return -1;
    return 0;
}

/* ---- the job prolog and epilog ------------------------------------------------------ */

/* Runs qgpuctl --socket-dir DIR with args (NULL-terminated, at most 12) in an environment
 * of its own (nothing of the job's). Returns as qsl_command_run; on failure why holds
 * qgpuctl's reason without its "qgpuctl: ". */
static int qgpuctl(const qsl_config_t *cfg, const char *const *args, char *out, size_t outlen,
                   char why[QSL_ERR_LEN])
{
    const char *argv[16] = {cfg->qgpuctl, "--socket-dir", cfg->socket_dir};
    int n = 3;
    for (; *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    /* Each of qgpuctl's requests gets half the time: a hung arbiter is then reported by
     * qgpuctl itself, in its words, before the call is killed. */
    char timeout[40];
    snprintf(timeout, sizeof timeout, "QVGPU_TIMEOUT_MS=%d", cfg->timeout_ms / 2);
    const char *env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", timeout, NULL};
    char line[QSL_ERR_LEN];
    int rc = qsl_command_run(argv, env, cfg->timeout_ms, out, outlen, line);
    if (rc == -ETIMEDOUT)
        qsl_say(why, "qgpuctl %s did not finish within %d s", argv[3], cfg->timeout_ms / 1000);
    else if (rc != 0 && !line[0])
        qsl_say(why, "qgpuctl %s failed with status %d and no reason", argv[3], rc);
    else if (rc != 0)
        qsl_say(why, "%s", strncmp(line, "qgpuctl: ", 9) == 0 ? line + 9 : line);
    if (rc != 0)
        qsl_one_line(why);
    return rc;
}

/* The GPU index Slurm gave the job on this node (the first, if several), or NULL. Slurm's
 * index is its order in gres.conf, which is NVML's with AutoDetect=nvml or when the
 * devices are listed in nvidia-smi's order (docs/slurm.md). */
static const char *job_gpu(char buf[16])
{
    const char *gpus = getenv("SLURM_JOB_GPUS");
    if (!gpus || !*gpus)
        return NULL;
    size_t n = strspn(gpus, "0123456789");
    if (n == 0 || n > 4 || (gpus[n] && gpus[n] != ','))
        return NULL;
    memcpy(buf, gpus, n);
    buf[n] = '\0';
    return buf;
}

/* Makes the job's vGPU, filling rec; on failure rec->error says why. */
static void make_vgpu(const qsl_config_t *cfg, uint32_t job, const char *value, qsl_record_t *rec)
{
    char vm[32], gpu[16], out[8192], why[QSL_ERR_LEN], err[QSL_ERR_LEN];
    qsl_spec_t spec;
    qsl_args_t opts;
    snprintf(vm, sizeof vm, "slurm-%u", job);
    memset(rec, 0, sizeof *rec);
    if (qsl_spec_parse(value, cfg->profiles, &spec, err) < 0) {
        qsl_say(rec->error, "qvgpu: job %u got no vGPU: %s", job, err);
        return;
    }
    const char *args[16] = {"create", "--vm", vm};
    int n = 3;
    qsl_spec_args(&spec, &opts);
    for (int i = 0; opts.argv[i]; i++)
        args[n++] = opts.argv[i];
    if (job_gpu(gpu)) {
        args[n++] = "--gpu";
        args[n++] = gpu;
    }
    args[n] = NULL;
    if (qgpuctl(cfg, args, out, sizeof out, why) != 0) {
        qsl_say(rec->error, "qvgpu: job %u got no vGPU (--vgpu=%.48s): %s", job, value, why);
        return;
    }
    char id[32];
    snprintf(id, sizeof id, "%.*s", (int)strcspn(out, "\n"), out);
    const char *env_args[] = {"env", id, NULL};
    if (qgpuctl(cfg, env_args, out, sizeof out, why) != 0 ||
        qsl_record_from_env(out, rec, why) < 0) {
        const char *destroy[] = {"destroy", "--vm", vm, NULL};
        char ignored[QSL_ERR_LEN];
        qgpuctl(cfg, destroy, out, sizeof out, ignored);
        memset(rec, 0, sizeof *rec);
        qsl_say(rec->error, "qvgpu: job %u got no vGPU: %s", job, why);
        return;
    }
    if (cfg->tenant_dir[0])
        snprintf(rec->socket_dir, sizeof rec->socket_dir, "%s", cfg->tenant_dir);
}

EXPORT int slurm_spank_job_prolog(spank_t sp, int ac, char **av)
{
    qsl_config_t cfg;
    qsl_record_t rec;
    uint32_t job;
    char *value = NULL, err[QSL_ERR_LEN];
    if (spank_option_getopt(sp, &vgpu_option, &value) != ESPANK_SUCCESS || !value)
        return 0;
    if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS) {
        slurm_error("spank_qvgpu: prolog: no job id");
        return 0;
    }
    if (qsl_config_parse(ac, av, &cfg, err) < 0) {
        /* slurm_spank_init is not called in the prolog's context: the arguments are
         * checked here again. Without them no vGPU; the record still fails the job. */
        slurm_error("%s", err);
        qsl_config_parse(0, NULL, &cfg, err);
        memset(&rec, 0, sizeof rec);
        qsl_say(rec.error, "qvgpu: job %u got no vGPU: %s", job, err);
    } else {
        make_vgpu(&cfg, job, value, &rec);
    }
    if (rec.vgpu[0])
        slurm_info("qvgpu: job %u: vGPU %s (--vgpu=%s) on GPU %s", job, rec.vgpu, value, rec.gpu);
    else
        slurm_error("%s", rec.error);
    if (qsl_record_write(cfg.state_dir, job, &rec, err) < 0) {
        slurm_error("spank_qvgpu: job %u: %s", job, err);
        if (rec.vgpu[0]) {
            char vm[32], out[256], ignored[QSL_ERR_LEN];
            snprintf(vm, sizeof vm, "slurm-%u", job);
            const char *destroy[] = {"destroy", "--vm", vm, NULL};
            qgpuctl(&cfg, destroy, out, sizeof out, ignored);
        }
        return -1;
    }
    return 0;
}

EXPORT int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
    qsl_config_t cfg;
    qsl_record_t rec;
    uint32_t job;
    char *value = NULL, err[QSL_ERR_LEN], vm[32], out[1024], why[QSL_ERR_LEN];
    if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS)
        return 0;
    if (qsl_config_parse(ac, av, &cfg, err) < 0) {
        slurm_error("%s", err);
        return 0;
    }
    int have = qsl_record_read(cfg.state_dir, job, &rec, err);
    bool asked = spank_option_getopt(sp, &vgpu_option, &value) == ESPANK_SUCCESS;
    if (have == -ENOENT && !asked)
        return 0;
    /* By name, not by the recorded id: a create that timed out may still have made one. */
    snprintf(vm, sizeof vm, "slurm-%u", job);
    const char *destroy[] = {"destroy", "--vm", vm, NULL};
    if (qgpuctl(&cfg, destroy, out, sizeof out, why) != 0)
        slurm_error("qvgpu: job %u ended but its vGPU could not be destroyed now (%s); "
                    "`qgpuctl gc --vm-prefix slurm- ...` removes it later",
                    job, why);
    else if (out[0])
        slurm_info("qvgpu: job %u ended: destroyed %.*s", job, (int)strcspn(out, "\n"), out);
    qsl_record_remove(cfg.state_dir, job);
    return 0;
}
