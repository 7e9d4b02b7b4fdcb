"""The qvgpu package against a real qarbiter on the simulated GPU: every call, each
error, and what qgpuctl sees of the same state."""
import asyncio
import ctypes
import errno
import json
import os
import subprocess
import time

import pytest

import qvgpu
from qvgpu import VGPUManager, _lib
from conftest import BUILD, ROOT, Arbiter


def run(coro):
    return asyncio.run(coro)


def test_create_info_stats_resize_destroy(mgr, arbiter):
    vid = run(mgr.create_vgpu(vm_id="my-vm", profile_name="Q2"))
    assert vid == "vg-1"
    info = mgr.get_vgpu_info(vid)
    assert info["id"] == vid
    assert info["vm_id"] == "my-vm"
    assert info["memory_mb"] == 2048
    assert info["cuda_cores"] == 512  # 20% of the first GPU's 2560
    assert info["utilization"] == 0.0
    assert info["gpu"] in (0, 1)
    assert info["profile"] == "Q2"

    gpu = mgr.get_gpu_stats(gpu_id=info["gpu"])
    assert gpu["vgpu_count"] == 1
    assert gpu["total_memory_mb"] in (8192, 4096)
    assert gpu["name"].startswith("NVIDIA GeForce GTX 10")
    assert 0.0 <= gpu["memory_utilization"] <= 1.0
    assert gpu["used_memory_mb"] >= 0

    totals = mgr.get_global_stats()
    assert totals["total_vgpus"] == 1
    assert totals["active_vgpus"] == 0
    assert totals["memory_reserved_mb"] == 2048
    assert len(totals["gpus"]) == 2

    new = run(mgr.resize_vgpu(vid, memory="3GiB", share=30))
    assert new["memory_mb"] == 3072 and new["share"] == 30
    assert mgr.get_vgpu_info(vid)["memory_mb"] == 3072
    new = run(mgr.resize_vgpu(vid, limit=50))
    assert new["limit"] == 50 and new["share"] == 30
    new = run(mgr.resize_vgpu(vid, memory=1536))
    assert new["memory_mb"] == 1536

    assert run(mgr.destroy_vgpu(vid)) is None
    assert mgr.list_vgpus() == []
    assert mgr.get_global_stats()["total_vgpus"] == 0


def test_creates_from_memory_and_share_with_a_limit_on_a_named_gpu(mgr):
    vid = run(mgr.create_vgpu("batch", memory="1536MiB", share=25, limit=40, gpu=1))
    info = mgr.get_vgpu_info(vid)
    assert (info["memory_mb"], info["share"], info["limit"], info["gpu"]) == (1536, 25, 40, 1)
    assert info["profile"] == "custom"
    assert info["cuda_cores"] == 320  # 25% of the GTX 1050's 1280
    assert mgr.get_gpu_stats(1)["vgpu_count"] == 1
    assert mgr.get_gpu_stats(0)["vgpu_count"] == 0


def test_lists_in_creation_order(mgr):
    async def make():
        return [await mgr.create_vgpu(f"vm-{i}", profile_name="Q1") for i in range(4)]
    ids = run(make())
    assert [v["id"] for v in mgr.list_vgpus()] == ids
    assert [v["vm_id"] for v in mgr.list_vgpus()] == [f"vm-{i}" for i in range(4)]


def test_many_tasks_at_once_each_get_a_vgpu(mgr):
    async def make():
        return await asyncio.gather(*(mgr.create_vgpu(f"t-{i}", profile_name="Q1")
                                      for i in range(10)))
    ids = run(make())
    assert len(set(ids)) == 10
    assert mgr.get_global_stats()["total_vgpus"] == 10


def test_agrees_with_qgpuctl_json(mgr, arbiter):
    vid = run(mgr.create_vgpu("same", profile_name="Q4"))
    ctl = json.loads(arbiter.ctl("--json", "info", vid).stdout)
    info = mgr.get_vgpu_info(vid)
    for key, value in ctl.items():
        assert info[key] == value, key
    ctl = json.loads(arbiter.ctl("--json", "gpus").stdout)["gpus"]
    for g in ctl:
        mine = mgr.get_gpu_stats(g["index"])
        for key, value in g.items():
            if key in ("util", "memory_util"):
                assert mine[key] == pytest.approx(value, abs=5), key
            else:
                assert mine[key] == value, key


def test_counts_a_vgpu_with_a_live_process_as_active(mgr, arbiter):
    vid = run(mgr.create_vgpu("busy", profile_name="Q2"))
    work = arbiter.workload(vid, "init", "alloc:cuMemAlloc_v2:direct:100M", "hold")
    try:
        assert work.stdout.readline().startswith("init 0")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and mgr.get_vgpu_info(vid)["memory_used_mb"] < 100:
            time.sleep(0.05)
        info = mgr.get_vgpu_info(vid)
        assert info["procs"] == 1
        assert info["memory_used_mb"] >= 100
        assert mgr.get_global_stats()["active_vgpus"] == 1
    finally:
        work.kill()
        work.wait()


# ---- errors ------------------------------------------------------------------------


def error_of(call):
    with pytest.raises(qvgpu.Error) as e:
        call()
    return e.value


def test_an_unknown_profile_is_refused_with_the_arbiters_reason(mgr):
    e = error_of(lambda: run(mgr.create_vgpu("x", profile_name="Q3")))
    assert e.errno == errno.EINVAL
    assert "Q3" in str(e) and "\n" not in str(e)


def test_a_vgpu_that_does_not_fit_says_what_is_free(mgr):
    e = error_of(lambda: run(mgr.create_vgpu("x", memory="64GiB", share=10)))
    assert e.errno in (errno.ENOSPC, errno.EINVAL)
    assert "MiB" in str(e)
    run(mgr.create_vgpu("full", profile_name="Q8", gpu=0))
    e = error_of(lambda: run(mgr.create_vgpu("x", profile_name="Q4", gpu=0)))
    assert e.errno == errno.ENOSPC
    assert "GPU 0" in str(e), str(e)


def test_unknown_vgpus_and_gpus_are_not_found(mgr):
    for call in (lambda: mgr.get_vgpu_info("vg-404"),
                 lambda: run(mgr.destroy_vgpu("vg-404")),
                 lambda: run(mgr.resize_vgpu("vg-404", share=10))):
        e = error_of(call)
        assert e.errno == errno.ENOENT
        assert "vg-404" in str(e)
    e = error_of(lambda: mgr.get_gpu_stats(7))
    assert e.errno == errno.ENOENT
    assert "there is no GPU 7" in str(e)


@pytest.mark.parametrize("kwargs, words", [
    ({"share": 0, "memory": 1024}, "share 0"),
    ({"share": 101, "memory": 1024}, "share 101"),
    ({"share": "lots", "memory": 1024}, "share 'lots'"),
    ({"share": 10, "memory": "lots"}, "lots"),
    ({"share": 10, "memory": -1}, "memory -1"),
    ({"share": 10, "memory": 1024, "limit": 5}, "limit"),
    ({"profile_name": "Q2", "memory": 1024, "share": 10}, "profile"),
    ({"profile_name": "Q2", "gpu": -3}, "gpu -3"),
    ({"profile_name": "Q2", "gpu": 9}, "9"),
])
def test_bad_values_are_refused_with_a_reason(mgr, kwargs, words):
    e = error_of(lambda: run(mgr.create_vgpu("x", **kwargs)))
    assert e.errno in (errno.EINVAL, errno.ENOENT), (e.errno, str(e))
    assert words in str(e), str(e)
    assert mgr.list_vgpus() == [], "nothing was made"


def test_a_resize_must_change_something_and_keep_valid_values(mgr):
    vid = run(mgr.create_vgpu("r", profile_name="Q2"))
    e = error_of(lambda: run(mgr.resize_vgpu(vid)))
    assert e.errno == errno.EINVAL and "resize needs" in str(e)
    e = error_of(lambda: run(mgr.resize_vgpu(vid, share=0)))
    assert e.errno == errno.EINVAL
    e = error_of(lambda: run(mgr.resize_vgpu(vid, memory="9TiB")))
    assert e.errno in (errno.ENOSPC, errno.EINVAL), str(e)
    assert mgr.get_vgpu_info(vid)["memory_mb"] == 2048, "nothing changed"


def test_no_arbiter_is_said_plainly(tmp_path):
    m = VGPUManager(socket_dir=str(tmp_path / "nowhere"))
    e = error_of(m.list_vgpus)
    assert e.errno == errno.ENOTCONN
    assert "no arbiter at" in str(e) and "nowhere" in str(e)
    e = error_of(lambda: run(m.create_vgpu("x", profile_name="Q1")))
    assert e.errno == errno.ENOTCONN


def test_goes_on_after_the_arbiter_restarts(mgr, arbiter):
    vid = run(mgr.create_vgpu("keep", profile_name="Q1"))
    arbiter.stop()
    e = error_of(mgr.list_vgpus)
    assert e.errno in (errno.ENOTCONN, errno.ETIMEDOUT, errno.ECONNRESET)
    arbiter.start()
    deadline = time.monotonic() + 10
    while True:
        try:
            assert mgr.get_vgpu_info(vid)["vm_id"] == "keep"
            break
        except qvgpu.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_default_socket_dir_is_qgpuctls(monkeypatch):
    monkeypatch.setenv("QVGPU_SOCKET_DIR", "/run/elsewhere")
    assert VGPUManager().socket_dir == "/run/elsewhere"
    monkeypatch.delenv("QVGPU_SOCKET_DIR")
    assert VGPUManager().socket_dir == "/run/qvgpu"


def test_a_missing_library_is_said_plainly(monkeypatch):
    monkeypatch.setenv("QVGPU_LIBRARY", "/nonexistent/libqvgpu.so")
    e = error_of(VGPUManager)
    assert "cannot load libqvgpu.so" in str(e) and "/nonexistent/libqvgpu.so" in str(e)


def test_structures_match_the_c_header(tmp_path):
    """The ctypes mirror of qvgpu.h has the C compiler's sizes and offsets."""
    checks = {
        "qv_vgpu_t": (_lib.VGpu, ["memory_mb", "util", "procs", "created", "memory_real",
                                  "unmanaged_procs"]),
        "qv_gpu_t": (_lib.Gpu, ["memory_total_mb", "util", "vgpus", "memory_unmanaged_mb",
                                "unmanaged_procs"]),
        "qv_gpu_list_t": (_lib.GpuList, ["oversub_share", "placement"]),
        "qv_stats_t": (_lib.Stats, ["vgpus_active", "memory_used_mb", "memory_real_mb", "kills",
                                    "findings"]),
        "qv_finding_t": (_lib.Finding, ["gpu", "pid", "memory", "since", "detail"]),
        "qv_vgpu_list_t": (_lib.VGpuList, ["vgpus"]),
        "qv_create_t": (_lib.Create, ["memory_mb", "has_limit", "gpu"]),
        "qv_resize_t": (_lib.Resize, ["memory_mb", "limit"]),
        "qv_moved_proc_t": (_lib.MovedProc, ["fate", "paused_ms", "bytes"]),
        "qv_migration_t": (_lib.Migration, ["to", "ms", "text", "nprocs", "procs"]),
        "qv_balance_move_t": (_lib.BalanceMove, ["to", "why", "done", "text"]),
        "qv_balance_plan_t": (_lib.BalancePlan, ["count", "moves"]),
    }
    src = ['#include <stdio.h>', '#include <stddef.h>', '#include "qvgpu.h"', 'int main(void){']
    for cname, (_, fields) in checks.items():
        src.append(f'printf("{cname} %zu\\n", sizeof({cname}));')
        for f in fields:
            src.append(f'printf("{cname}.{f} %zu\\n", offsetof({cname}, {f}));')
    src.append("return 0;}")
    (tmp_path / "abi.c").write_text("\n".join(src))
    subprocess.run(["cc", "-I", str(ROOT / "include"), "-o", str(tmp_path / "abi"),
                    str(tmp_path / "abi.c")], check=True)
    c = dict(line.split() for line in
             subprocess.run([str(tmp_path / "abi")], capture_output=True, text=True,
                            check=True).stdout.splitlines())
    for cname, (cls, fields) in checks.items():
        assert ctypes.sizeof(cls) == int(c[cname]), cname
        for f in fields:
            assert getattr(cls, f).offset == int(c[f"{cname}.{f}"]), f"{cname}.{f}"


# ---- moving vGPUs ---------------------------------------------------------------------


def test_a_move_between_gpus_of_two_chips_is_refused(mgr):
    vid = run(mgr.create_vgpu("m", profile_name="Q1", gpu=0))
    e = error_of(lambda: run(mgr.migrate_vgpu(vid, 1)))
    assert "the driver moves processes only between GPUs of one chip" in str(e)
    assert e.errno == errno.EINVAL
    assert mgr.get_vgpu_info(vid)["gpu"] == 0
    e = error_of(lambda: run(mgr.migrate_vgpu(vid, "gpu one")))
    assert e.errno == errno.EINVAL


def test_migrate_and_balance_on_gpus_of_one_chip(tmp_path):
    a = Arbiter(tmp_path)
    a.env["QSIM_GPUS"] = "NVIDIA GeForce GTX 1080:8GiB:20,NVIDIA GeForce GTX 1080:8GiB:20"
    a.start()
    try:
        m = VGPUManager(socket_dir=a.socket_dir)
        vid = run(m.create_vgpu("m", profile_name="Q2", gpu=0))
        uuid1 = json.loads(a.ctl("--json", "gpus").stdout)["gpus"][1]["uuid"]
        done = run(m.migrate_vgpu(vid, target_gpu_id=uuid1))
        assert done["from"] == 0 and done["to"] == 1
        assert done["text"].startswith(f"moved {vid} from GPU 0 to GPU 1 in ")
        assert done["procs"] == []
        assert done["vgpu"]["gpu"] == 1
        assert m.get_vgpu_info(vid)["gpu_uuid"] == uuid1
        back = run(m.migrate_vgpu(vid, 0))
        assert back["to"] == 0
        assert run(m.auto_balance_gpus(dry_run=True)) == [], "nothing is busy"
        assert run(m.auto_balance_gpus()) == []
        m.close()
    finally:
        a.cleanup()
