"""Fixtures for the qvgpu package's tests: a real qarbiter on a private simulated GPU
host (build/sim), in temporary directories, one per test.

Run from the project root after `make`:  /usr/bin/python3 -m pytest python/tests
($QVGPU_BUILD names another build directory, e.g. build-san).
"""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("QVGPU_BUILD", ROOT / "build")).resolve()
# two GPUs of the simulated host: 8 GiB with 2560 CUDA cores, 4 GiB with 1280
GPUS = "NVIDIA GeForce GTX 1080:8GiB:20,NVIDIA GeForce GTX 1050:4GiB:10"

sys.path.insert(0, str(ROOT / "python"))


class Arbiter:
    """A qarbiter process with its socket and state directories."""

    def __init__(self, tmp):
        self.socket_dir = str(tmp / "sock")
        self.state_dir = str(tmp / "state")
        self.namespace = f"py-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.env = dict(os.environ, QSIM_NAMESPACE=self.namespace, QSIM_GPUS=GPUS)
        self.env["LD_LIBRARY_PATH"] = str(BUILD / "sim")
        self.proc = None
        self.log = tmp / "qarbiter.log"

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(BUILD / "qarbiter"), "--socket-dir", self.socket_dir, "--state-dir",
                 self.state_dir, "--http", "off", "--config", "off"], env=self.env, stderr=log)
        admin = os.path.join(self.socket_dir, "admin.sock")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"qarbiter exited: {self.log.read_text()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(admin)
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"qarbiter did not come up: {self.log.read_text()}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def ctl(self, *args):
        """qgpuctl --socket-dir <ours> ARGS..., its CompletedProcess (text)."""
        return subprocess.run([str(BUILD / "qgpuctl"), "--socket-dir", self.socket_dir, *args],
                              env=self.env, capture_output=True, text=True, timeout=30)

    def workload(self, vgpu_id, *commands):
        """tests/progs/shim_work COMMANDS... in vgpu_id through `qgpuctl run`, started."""
        return subprocess.Popen(
            [str(BUILD / "qgpuctl"), "--socket-dir", self.socket_dir, "run", vgpu_id, "--",
             str(BUILD / "tests" / "progs" / "shim_work"), *commands],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cleanup(self):
        self.stop()
        for name in os.listdir("/dev/shm"):
            if name.startswith(f"qsim-{self.namespace}"):
                os.unlink(os.path.join("/dev/shm", name))


@pytest.fixture
def arbiter(tmp_path):
    if not (BUILD / "qarbiter").exists():
        pytest.fail(f"no {BUILD / 'qarbiter'}: run make first")
    a = Arbiter(tmp_path)
    a.start()
    yield a
    a.cleanup()


@pytest.fixture
def mgr(arbiter):
    from qvgpu import VGPUManager
    m = VGPUManager(socket_dir=arbiter.socket_dir)
    yield m
    m.close()


@pytest.fixture(autouse=True)
def _build_library(monkeypatch):
    """The package loads the libqvgpu of the build under test."""
    monkeypatch.setenv("QVGPU_LIBRARY", str(BUILD / "libqvgpu.so"))
