"""ctypes bindings of libqvgpu (include/qvgpu.h): the C library implements the wire to
the arbiter once, for qgpuctl and for this package alike.

The structures below mirror qvgpu.h field by field; the tests compare their sizes with
the C compiler's (python/tests/test_qvgpu.py).
"""
import ctypes
import ctypes.util
import os
from pathlib import Path

ERR_LEN = 256
ID_LEN = 32
SECRET_LEN = 33
UUID_LEN = 96


class VGpu(ctypes.Structure):
    _fields_ = [
        ("id", ctypes.c_char * ID_LEN),
        ("vm", ctypes.c_char * 129),
        ("gpu", ctypes.c_int),
        ("gpu_uuid", ctypes.c_char * UUID_LEN),
        ("profile", ctypes.c_char * 33),
        ("memory_mb", ctypes.c_uint64),
        ("cuda_cores", ctypes.c_uint64),
        ("share", ctypes.c_uint),
        ("limit", ctypes.c_uint),
        ("util", ctypes.c_double),
        ("memory_used", ctypes.c_uint64),
        ("memory_reserved", ctypes.c_uint64),
        ("procs", ctypes.c_uint),
        ("created", ctypes.c_int64),
        ("memory_real", ctypes.c_uint64),
        ("memory_unmanaged", ctypes.c_uint64),
        ("unmanaged_procs", ctypes.c_uint),
    ]


class Gpu(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_int),
        ("uuid", ctypes.c_char * UUID_LEN),
        ("name", ctypes.c_char * 96),
        ("memory_total_mb", ctypes.c_uint64),
        ("memory_used_mb", ctypes.c_uint64),
        ("memory_reserved_mb", ctypes.c_uint64),
        ("memory_util", ctypes.c_double),
        ("util", ctypes.c_double),
        ("sms", ctypes.c_uint),
        ("cuda_cores", ctypes.c_uint),
        ("share_reserved", ctypes.c_uint),
        ("vgpus", ctypes.c_uint),
        ("memory_unmanaged_mb", ctypes.c_uint64),
        ("unmanaged_procs", ctypes.c_uint),
    ]


class VGpuList(ctypes.Structure):
    _fields_ = [("count", ctypes.c_size_t), ("vgpus", ctypes.POINTER(VGpu))]


class GpuList(ctypes.Structure):
    _fields_ = [
        ("count", ctypes.c_size_t),
        ("gpus", ctypes.POINTER(Gpu)),
        ("oversub_memory", ctypes.c_double),
        ("oversub_share", ctypes.c_double),
        ("placement", ctypes.c_char * 16),
    ]


class Finding(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_char * 16),
        ("gpu", ctypes.c_int),
        ("vgpu", ctypes.c_char * ID_LEN),
        ("pid", ctypes.c_uint),
        ("name", ctypes.c_char * 17),
        ("memory", ctypes.c_uint64),
        ("quota", ctypes.c_uint64),
        ("since", ctypes.c_uint64),
        ("action", ctypes.c_char * 16),
        ("detail", ctypes.c_char * 200),
    ]


class Stats(ctypes.Structure):
    _fields_ = [
        ("ngpus", ctypes.c_size_t),
        ("gpus", ctypes.POINTER(Gpu)),
        ("vgpus_total", ctypes.c_uint),
        ("vgpus_active", ctypes.c_uint),
        ("memory_reserved_mb", ctypes.c_uint64),
        ("memory_used_mb", ctypes.c_uint64),
        ("memory_real_mb", ctypes.c_uint64),
        ("kills", ctypes.c_uint64),
        ("nfindings", ctypes.c_size_t),
        ("findings", ctypes.POINTER(Finding)),
    ]


class Create(ctypes.Structure):
    _fields_ = [
        ("vm", ctypes.c_char_p),
        ("profile", ctypes.c_char_p),
        ("memory_mb", ctypes.c_uint64),
        ("share", ctypes.c_uint),
        ("has_limit", ctypes.c_int),
        ("limit", ctypes.c_uint),
        ("gpu", ctypes.c_int),
    ]


class Resize(ctypes.Structure):
    _fields_ = [
        ("has_memory", ctypes.c_int),
        ("has_share", ctypes.c_int),
        ("has_limit", ctypes.c_int),
        ("memory_mb", ctypes.c_uint64),
        ("share", ctypes.c_uint),
        ("limit", ctypes.c_uint),
    ]


MAX_MOVED_PROCS = 256


class MovedProc(ctypes.Structure):
    _fields_ = [
        ("pid", ctypes.c_int),
        ("fate", ctypes.c_char * 16),
        ("paused_ms", ctypes.c_double),
        ("bytes", ctypes.c_uint64),
    ]


class Migration(ctypes.Structure):
    _fields_ = [
        ("vgpu", VGpu),
        ("from_", ctypes.c_int),
        ("to", ctypes.c_int),
        ("ms", ctypes.c_double),
        ("text", ctypes.c_char * 1024),
        ("nprocs", ctypes.c_size_t),
        ("procs", MovedProc * MAX_MOVED_PROCS),
    ]


class BalanceMove(ctypes.Structure):
    _fields_ = [
        ("vgpu", ctypes.c_char * ID_LEN),
        ("from_", ctypes.c_int),
        ("to", ctypes.c_int),
        ("why", ctypes.c_char * 256),
        ("done", ctypes.c_int),
        ("text", ctypes.c_char * 1024),
    ]


class BalancePlan(ctypes.Structure):
    _fields_ = [
        ("dry_run", ctypes.c_int),
        ("count", ctypes.c_size_t),
        ("moves", ctypes.POINTER(BalanceMove)),
    ]


def _candidates():
    """Where libqvgpu.so may be, most specific first."""
    env = os.environ.get("QVGPU_LIBRARY")
    if env:
        yield env
        return
    try:
        from qvgpu import _installed  # written by `make install`
        yield os.path.join(_installed.LIBDIR, "libqvgpu.so")
    except ImportError:
        pass
    # the build tree: python/qvgpu/_lib.py -> build/libqvgpu.so
    yield str(Path(__file__).resolve().parents[2] / "build" / "libqvgpu.so")
    found = ctypes.util.find_library("qvgpu")
    if found:
        yield found


def load():
    """libqvgpu with its prototypes declared; raises OSError naming where it looked."""
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            break
        except OSError as e:
            tried.append(f"{path} ({e})")
    else:
        raise OSError("cannot load libqvgpu.so: tried " + "; ".join(tried) +
                      " (build it with make, install it with make install, or set QVGPU_LIBRARY)")
    err = ctypes.POINTER(ctypes.c_char)  # a create_string_buffer(ERR_LEN) written by the call
    client = ctypes.c_void_p
    proto = {
        "qv_default_socket_dir": (ctypes.c_char_p, []),
        "qv_connect": (client, [ctypes.c_char_p, err]),
        "qv_disconnect": (None, [ctypes.POINTER(client)]),
        "qv_create": (ctypes.c_int, [client, ctypes.POINTER(Create), ctypes.POINTER(VGpu),
                                     ctypes.POINTER(ctypes.c_char), err]),
        "qv_destroy": (ctypes.c_int, [client, ctypes.c_char_p, err]),
        "qv_resize": (ctypes.c_int, [client, ctypes.c_char_p, ctypes.POINTER(Resize),
                                     ctypes.POINTER(VGpu), err]),
        "qv_info": (ctypes.c_int, [client, ctypes.c_char_p, ctypes.POINTER(VGpu), err]),
        "qv_list": (ctypes.c_int, [client, ctypes.POINTER(ctypes.POINTER(VGpuList)), err]),
        "qv_vgpu_list_free": (None, [ctypes.POINTER(ctypes.POINTER(VGpuList))]),
        "qv_gpus": (ctypes.c_int, [client, ctypes.POINTER(ctypes.POINTER(GpuList)), err]),
        "qv_gpu_list_free": (None, [ctypes.POINTER(ctypes.POINTER(GpuList))]),
        "qv_stats": (ctypes.c_int, [client, ctypes.POINTER(ctypes.POINTER(Stats)), err]),
        "qv_stats_free": (None, [ctypes.POINTER(ctypes.POINTER(Stats))]),
        "qv_parse_size_mb": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64), err]),
        "qv_migrate": (ctypes.c_int, [client, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                      ctypes.POINTER(Migration), err]),
        "qv_balance": (ctypes.c_int, [client, ctypes.c_int,
                                      ctypes.POINTER(ctypes.POINTER(BalancePlan)), err]),
        "qv_balance_plan_free": (None, [ctypes.POINTER(ctypes.POINTER(BalancePlan))]),
    }
    for name, (restype, argtypes) in proto.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib
