"""qvgpu: drive a qvgpu arbiter (qarbiter) from Python.

    from qvgpu import VGPUManager
    mgr = VGPUManager()                       # the socket dir as qgpuctl finds it
    vgpu_id = await mgr.create_vgpu(vm_id="my-vm", profile_name="Q2")
    info = mgr.get_vgpu_info(vgpu_id)         # memory_mb, cuda_cores, utilization, ...
    mgr.get_gpu_stats(gpu_id=0); mgr.get_global_stats(); mgr.list_vgpus()
    await mgr.resize_vgpu(vgpu_id, memory="3GiB", share=30)
    await mgr.migrate_vgpu(vgpu_id, target_gpu_id=1)   # with its running processes
    await mgr.auto_balance_gpus()             # move vGPUs off overloaded GPUs now
    await mgr.destroy_vgpu(vgpu_id)

Calls go through libqvgpu (the C library qgpuctl is built on, loaded with ctypes), so
the wire is implemented once. Changes (create, resize, destroy) are coroutines that run
the call on a worker thread; queries are plain calls. Every failure raises qvgpu.Error
with the one-line reason the arbiter gave. Reference: docs/python.md.
"""
import asyncio
import ctypes
import errno as _errno
import threading

from qvgpu import _lib

__all__ = ["VGPUManager", "Error"]

MIB = 1024 * 1024


class Error(Exception):
    """A request failed. str(error) is the one-line reason (the arbiter's, as qgpuctl
    prints it); errno is what it stands for (errno.ENOENT: no such vGPU or GPU,
    EINVAL: a bad value, ENOSPC: it does not fit, ENOTCONN: no arbiter, ...)."""

    def __init__(self, message, errno=0):
        super().__init__(message)
        self.errno = errno


def _text(raw):
    return raw.decode("utf-8", "replace")


def _vgpu(v):
    """A vGPU record as a dict: the product's names (vm_id, utilization 0..1) and
    qgpuctl --json's (vm, util in percent, memory_used in bytes, ...)."""
    return {
        "id": _text(v.id),
        "vm_id": _text(v.vm),
        "vm": _text(v.vm),
        "gpu": v.gpu,
        "gpu_uuid": _text(v.gpu_uuid),
        "profile": _text(v.profile),
        "memory_mb": v.memory_mb,
        "cuda_cores": v.cuda_cores,
        "share": v.share,
        "limit": v.limit,
        "utilization": v.util / 100,
        "util": v.util,
        "memory_used": v.memory_used,
        "memory_used_mb": v.memory_used // MIB,
        "memory_reserved": v.memory_reserved,
        "procs": v.procs,
        "created": v.created,
        "memory_real": v.memory_real,
        "memory_unmanaged": v.memory_unmanaged,
        "unmanaged_procs": v.unmanaged_procs,
    }


def _gpu(g):
    """A GPU record as a dict: the product's names and qgpuctl --json's."""
    return {
        "index": g.index,
        "uuid": _text(g.uuid),
        "name": _text(g.name),
        "total_memory_mb": g.memory_total_mb,
        "used_memory_mb": g.memory_used_mb,
        "reserved_memory_mb": g.memory_reserved_mb,
        "memory_utilization": g.memory_util / 100,
        "utilization": g.util / 100,
        "vgpu_count": g.vgpus,
        "memory_total_mb": g.memory_total_mb,
        "memory_used_mb": g.memory_used_mb,
        "memory_reserved_mb": g.memory_reserved_mb,
        "memory_util": g.memory_util,
        "util": g.util,
        "sms": g.sms,
        "cuda_cores": g.cuda_cores,
        "share_reserved": g.share_reserved,
        "vgpus": g.vgpus,
        "memory_unmanaged_mb": g.memory_unmanaged_mb,
        "unmanaged_procs": g.unmanaged_procs,
    }


def _finding(f):
    """What the arbiter's audit found, as qgpuctl --json stats shows it."""
    return {
        "kind": _text(f.kind),
        "gpu": f.gpu,
        "vgpu": _text(f.vgpu),
        "pid": f.pid,
        "name": _text(f.name),
        "memory": f.memory,
        "quota": f.quota,
        "since": f.since,
        "action": _text(f.action),
        "detail": _text(f.detail),
    }


def _percent(name, value, low):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 100:
        raise Error(f"{name} {value!r} is not a percentage from {low} to 100", _errno.EINVAL)
    return value


class VGPUManager:
    """One connection to the arbiter's admin socket (opened at the first call, reopened
    after the arbiter went away). Safe to share between threads and tasks: calls are
    serialised, as libqvgpu wants one thread at a time per connection.

    socket_dir: where the arbiter's admin.sock is; None finds it as qgpuctl does
    ($QVGPU_SOCKET_DIR, else /run/qvgpu)."""

    def __init__(self, socket_dir=None):
        try:
            self._lib = _lib.load()
        except OSError as e:
            raise Error(str(e), _errno.ENOENT) from None
        self.socket_dir = socket_dir or _text(self._lib.qv_default_socket_dir())
        self._lock = threading.Lock()
        self._client = ctypes.c_void_p()

    def __repr__(self):
        return f"VGPUManager(socket_dir={self.socket_dir!r})"

    def close(self):
        """Closes the connection (the next call opens a new one)."""
        with self._lock:
            self._lib.qv_disconnect(ctypes.byref(self._client))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        lib, client = getattr(self, "_lib", None), getattr(self, "_client", None)
        if lib is not None and client:
            lib.qv_disconnect(ctypes.byref(client))

    # ---- calls into libqvgpu --------------------------------------------------------

    def _call(self, fn, *args):
        """fn(client, *args, err) under the lock; raises Error when it fails. A dead
        connection is dropped so that the next call connects again."""
        err = ctypes.create_string_buffer(_lib.ERR_LEN)
        with self._lock:
            if not self._client:
                c = self._lib.qv_connect(self.socket_dir.encode(), err)
                if not c:
                    raise Error(_text(err.value), _errno.ENOTCONN)
                self._client = ctypes.c_void_p(c)
            rc = fn(self._client, *args, err)
            if rc < 0 and -rc in (_errno.ENOTCONN, _errno.ETIMEDOUT, _errno.ECONNRESET):
                self._lib.qv_disconnect(ctypes.byref(self._client))
        if rc < 0:
            raise Error(_text(err.value), -rc)

    def _memory_mb(self, memory):
        """MiB from an int (MiB) or a size text such as "3GiB", "1536MiB"."""
        if isinstance(memory, bool):
            raise Error(f"memory {memory!r} is not a size (e.g. 2048 or '2GiB')", _errno.EINVAL)
        if isinstance(memory, int):
            if memory <= 0:
                raise Error(f"memory {memory} MiB is not a size of at least 1 MiB", _errno.EINVAL)
            return memory
        if not isinstance(memory, str):
            raise Error(f"memory {memory!r} is not a size (e.g. 2048 or '2GiB')", _errno.EINVAL)
        mb = ctypes.c_uint64()
        err = ctypes.create_string_buffer(_lib.ERR_LEN)
        if self._lib.qv_parse_size_mb(memory.encode(), ctypes.byref(mb), err) < 0:
            raise Error(_text(err.value), _errno.EINVAL)
        return mb.value

    # ---- changes (coroutines) -------------------------------------------------------

    async def create_vgpu(self, vm_id, profile_name=None, memory=None, share=None, limit=None,
                          gpu=None):
        """Makes a vGPU for vm_id from a profile ("Q1", "Q2", "Q4", "Q8" or one of the
        arbiter's config), or from memory (MiB, or a size such as "1536MiB") and share
        (percent); limit caps it (percent, 0: none); gpu places it on that GPU index
        (None: the arbiter picks). Returns its id ("vg-N")."""
        if not isinstance(vm_id, str) or not vm_id:
            raise Error(f"vm_id {vm_id!r} must be a non-empty string", _errno.EINVAL)
        req = _lib.Create(vm=vm_id.encode(), gpu=-1)
        if profile_name is not None:
            req.profile = str(profile_name).encode()
        if memory is not None:
            req.memory_mb = self._memory_mb(memory)
        if share is not None:
            req.share = _percent("share", share, 1)
        if limit is not None:
            req.has_limit, req.limit = 1, _percent("limit", limit, 0)
        if gpu is not None:
            if isinstance(gpu, bool) or not isinstance(gpu, int) or gpu < 0:
                raise Error(f"gpu {gpu!r} is not a GPU index", _errno.EINVAL)
            req.gpu = gpu
        out = _lib.VGpu()
        secret = ctypes.create_string_buffer(_lib.SECRET_LEN)

        def call():
            self._call(self._lib.qv_create, ctypes.byref(req), ctypes.byref(out), secret)
            return _text(out.id)

        return await asyncio.to_thread(call)

    async def resize_vgpu(self, vgpu_id, memory=None, share=None, limit=None):
        """Changes a vGPU's quota (MiB or a size text), share or limit (0 removes it)
        live; returns its new record (as get_vgpu_info)."""
        req = _lib.Resize()
        if memory is not None:
            req.has_memory, req.memory_mb = 1, self._memory_mb(memory)
        if share is not None:
            req.has_share, req.share = 1, _percent("share", share, 1)
        if limit is not None:
            req.has_limit, req.limit = 1, _percent("limit", limit, 0)
        out = _lib.VGpu()

        def call():
            self._call(self._lib.qv_resize, str(vgpu_id).encode(), ctypes.byref(req),
                       ctypes.byref(out))
            return _vgpu(out)

        return await asyncio.to_thread(call)

    async def migrate_vgpu(self, vgpu_id, target_gpu_id):
        """Moves a vGPU and its running processes to another GPU of the same chip:
        target_gpu_id is a GPU index, or a GPU UUID ("GPU-..."). Returns what happened: a
        dict with vgpu (its record, now on the target), from, to, ms, text (the line
        qgpuctl migrate prints) and procs (each pid, its fate and how long its launches
        were paused, paused_ms). A refused or failed move raises Error, and nothing moved
        (docs/migration.md)."""
        gpu, uuid = -1, None
        if isinstance(target_gpu_id, str) and target_gpu_id.startswith("GPU-"):
            uuid = target_gpu_id.encode()
        elif isinstance(target_gpu_id, bool) or not isinstance(target_gpu_id, int) or \
                target_gpu_id < 0:
            raise Error(f"target_gpu_id {target_gpu_id!r} is neither a GPU index nor a GPU UUID",
                        _errno.EINVAL)
        else:
            gpu = target_gpu_id
        out = _lib.Migration()

        def call():
            self._call(self._lib.qv_migrate, str(vgpu_id).encode(), gpu, uuid, ctypes.byref(out))
            return {
                "vgpu": _vgpu(out.vgpu),
                "from": out.from_,
                "to": out.to,
                "ms": out.ms,
                "text": _text(out.text),
                "procs": [{"pid": out.procs[i].pid, "fate": _text(out.procs[i].fate),
                           "paused_ms": out.procs[i].paused_ms, "bytes": out.procs[i].bytes}
                          for i in range(out.nprocs)],
            }

        return await asyncio.to_thread(call)

    async def auto_balance_gpus(self, dry_run=False):
        """Balances the GPUs now, as qgpuctl balance does: moves the least-used vGPUs
        from GPUs over the arbiter's [balance] high mark to GPUs under its low mark
        (dry_run: only plans). Returns the plan: a list of dicts with vgpu, from, to, why,
        done (whether it moved) and, unless dry_run, text (how the move went); [] when
        the GPUs are balanced."""
        plan = ctypes.POINTER(_lib.BalancePlan)()

        def call():
            self._call(self._lib.qv_balance, 1 if dry_run else 0, ctypes.byref(plan))
            try:
                p = plan.contents
                return [{"vgpu": _text(m.vgpu), "from": m.from_, "to": m.to,
                         "why": _text(m.why), "done": bool(m.done), "text": _text(m.text)}
                        for m in (p.moves[i] for i in range(p.count))]
            finally:
                self._lib.qv_balance_plan_free(ctypes.byref(plan))

        return await asyncio.to_thread(call)

    async def destroy_vgpu(self, vgpu_id):
        """Removes a vGPU; its processes lose their session."""
        await asyncio.to_thread(self._call, self._lib.qv_destroy, str(vgpu_id).encode())

    # ---- queries --------------------------------------------------------------------

    def get_vgpu_info(self, vgpu_id):
        """The vGPU as the arbiter has it now: a dict with id, vm_id, memory_mb,
        cuda_cores, utilization (0..1), gpu and the rest qgpuctl --json info shows."""
        out = _lib.VGpu()
        self._call(self._lib.qv_info, str(vgpu_id).encode(), ctypes.byref(out))
        return _vgpu(out)

    def list_vgpus(self):
        """Every vGPU, in creation order, as get_vgpu_info gives each."""
        lst = ctypes.POINTER(_lib.VGpuList)()
        self._call(self._lib.qv_list, ctypes.byref(lst))
        try:
            return [_vgpu(lst.contents.vgpus[i]) for i in range(lst.contents.count)]
        finally:
            self._lib.qv_vgpu_list_free(ctypes.byref(lst))

    def _stats(self):
        st = ctypes.POINTER(_lib.Stats)()
        self._call(self._lib.qv_stats, ctypes.byref(st))
        try:
            s = st.contents
            gpus = [_gpu(s.gpus[i]) for i in range(s.ngpus)]
            return gpus, {
                "total_vgpus": s.vgpus_total,
                "active_vgpus": s.vgpus_active,
                "memory_reserved_mb": s.memory_reserved_mb,
                "memory_used_mb": s.memory_used_mb,
                "vgpus_total": s.vgpus_total,
                "vgpus_active": s.vgpus_active,
                "memory_real_mb": s.memory_real_mb,
                "kills": s.kills,
                "findings": [_finding(s.findings[i]) for i in range(s.nfindings)],
            }
        finally:
            self._lib.qv_stats_free(ctypes.byref(st))

    def get_gpu_stats(self, gpu_id):
        """GPU gpu_id: a dict with name, used_memory_mb, total_memory_mb,
        memory_utilization (0..1), vgpu_count and the rest qgpuctl --json gpus shows."""
        gpus, _ = self._stats()
        for g in gpus:
            if g["index"] == gpu_id:
                return g
        raise Error(f"there is no GPU {gpu_id!r} (this host has GPUs "
                    f"{', '.join(str(g['index']) for g in gpus)}; qgpuctl gpus lists them)",
                    _errno.ENOENT)

    def get_global_stats(self):
        """The host: total_vgpus, active_vgpus (with a live process), memory_reserved_mb
        (all quotas), memory_used_mb, memory_real_mb (what the vGPUs' processes really
        hold, NVML), kills and findings (the audit's, docs/arbiter.md) and gpus (each as
        get_gpu_stats gives it)."""
        gpus, totals = self._stats()
        totals["gpus"] = gpus
        return totals
