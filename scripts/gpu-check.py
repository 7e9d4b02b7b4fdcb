#!/usr/bin/env python3
"""gpu-check.py - the framework parts of scripts/gpu-check.sh, run inside a vGPU (or
without the shim, for the baseline). One subcommand per check; each prints `key=value`
words on one line for the shell script to read, and exits 0 when the check could run
(its figures then say whether it met its goal), 3 when the framework is missing or has
no GPU (the line then says `skip=REASON`), 1 on an unexpected error.

  torch-vgpu QUOTA_MIB       mem_get_info, an allocation past the quota, a training step
  cupy-vgpu QUOTA_MIB        memGetInfo, an allocation past the quota, a reduction
  jax-vgpu QUOTA_MIB         JAX's preallocation (75% of what it sees), a computation
  torch-matmul START_NS SECONDS   matmul throughput in the window [START, START+SECONDS)
"""
import os
import sys
import time

SKIP = 3


def skip(reason):
    print("skip=" + reason.replace(" ", "_"))
    sys.exit(SKIP)


def import_torch():
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install
        skip("PyTorch not installed (%s)" % type(e).__name__)
    if not torch.cuda.is_available():
        skip("PyTorch has no CUDA device")
    return torch


def torch_vgpu(quota_mib):
    torch = import_torch()
    free, total = torch.cuda.mem_get_info()
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    try:
        past = torch.empty((quota_mib + 64) << 20, dtype=torch.uint8, device="cuda")
        past_result = "allocated"
        del past
    except oom:
        past_result = "OutOfMemoryError"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 10)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(256, 256, device="cuda")
    y = torch.randint(0, 10, (256,), device="cuda")
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print("total_mib=%d free_mib=%d past=%s loss_first=%.4f loss_last=%.4f"
          % (total >> 20, free >> 20, past_result, losses[0], losses[-1]))


def cupy_vgpu(quota_mib):
    try:
        import cupy
    except Exception as e:
        skip("CuPy not installed (%s)" % type(e).__name__)
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            skip("CuPy sees no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError as e:
        skip("CuPy sees no CUDA device (%s)" % e)
    free, total = cupy.cuda.runtime.memGetInfo()
    try:
        past = cupy.empty(((quota_mib + 64) << 20,), dtype=cupy.uint8)
        past_result = "allocated"
        del past
    except cupy.cuda.memory.OutOfMemoryError:
        past_result = "OutOfMemoryError"
    s = float(cupy.arange(1000, dtype=cupy.float64).sum())
    print("total_mib=%d free_mib=%d past=%s sum=%d" % (total >> 20, free >> 20, past_result, s))


def jax_vgpu(quota_mib):
    try:
        import jax
        import jax.numpy as jnp
    except Exception as e:
        skip("JAX not installed (%s)" % type(e).__name__)
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        skip("JAX has no GPU backend")
    x = jnp.arange(1000.0)
    total = float((x * 2).sum().block_until_ready())
    stats = gpus[0].memory_stats() or {}
    limit = stats.get("bytes_limit", 0)
    print("bytes_limit_mib=%d fraction=%.3f sum=%d" % (limit >> 20, limit / (quota_mib << 20),
                                                        total))


def torch_matmul(start_ns, seconds):
    torch = import_torch()
    n = int(os.environ.get("GPU_CHECK_MATMUL_N", "4096"))
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    end_ns = start_ns + int(seconds * 1e9)
    late = int(time.time_ns() > start_ns)
    while time.time_ns() < start_ns:
        a @ b
        torch.cuda.synchronize()
    done = 0
    while True:
        for _ in range(4):
            a @ b
        torch.cuda.synchronize()
        if time.time_ns() > end_ns:
            break
        done += 4
    print("matmuls=%d seconds=%.3f rate=%.3f late=%d" % (done, seconds, done / seconds, late))


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd = sys.argv[1]
    try:
        if cmd == "torch-vgpu":
            torch_vgpu(int(sys.argv[2]))
        elif cmd == "cupy-vgpu":
            cupy_vgpu(int(sys.argv[2]))
        elif cmd == "jax-vgpu":
            jax_vgpu(int(sys.argv[2]))
        elif cmd == "torch-matmul" and len(sys.argv) == 4:
            torch_matmul(int(sys.argv[2]), float(sys.argv[3]))
        else:
            print(__doc__, file=sys.stderr)
            sys.exit(2)
    except SystemExit:
        raise
    except Exception as e:
        print("error=%s:%s" % (type(e).__name__, str(e).replace(" ", "_")[:200]))
        sys.exit(1)


if __name__ == "__main__":
    main()
