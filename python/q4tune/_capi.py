"""The C library, loaded with ctypes: its structs, prototypes and errors.

Which file is loaded: $Q4TUNE_LIBRARY if set (a path to libq4tune.so),
else whatever the dynamic loader finds as libq4tune.so.0 (an installed
library, or one on LD_LIBRARY_PATH).
"""
import ctypes
import enum
import os

c_int, c_void_p, c_char_p, c_size_t = ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t


class Status(enum.IntEnum):
    """q4_status: 0 is success, every other value an error (include/q4tune.h)."""
    OK = 0
    INVALID_ARG = 1
    UNSUPPORTED = 2
    NO_DRIVER = 3
    NO_DEVICE = 4
    DEVICE_TOO_OLD = 5
    NO_HEADERS = 6
    NVRTC = 7
    CUDA = 8
    DB = 9
    NO_MEMORY = 10
    TEMPLATE = 11
    VERIFY = 12
    IO = 13


class Error(Exception):
    """A q4tune call failed: `status` says how, `message` is the library's own words."""

    def __init__(self, status, message):
        try:
            self.status = Status(status)
        except ValueError:  # a code newer than this module
            self.status = int(status)
        self.message = message
        super().__init__(f"{status_name(status)}: {message}")


class WeightsStruct(ctypes.Structure):
    """struct q4_weights."""
    _fields_ = [("format", c_int), ("n", c_int), ("k", c_int), ("group_size", c_int),
                ("qweight", c_void_p), ("scales", c_void_p), ("zeros", c_void_p),
                ("mask", c_void_p), ("perm", c_void_p), ("symmetric", c_int)]


class HostMatrixStruct(ctypes.Structure):
    """struct q4_host_matrix."""
    _fields_ = [("n", c_int), ("k", c_int), ("group_size", c_int),
                ("qweight", ctypes.POINTER(ctypes.c_uint)), ("scales", ctypes.POINTER(ctypes.c_ushort)),
                ("zeros", ctypes.POINTER(ctypes.c_ushort)), ("perm", ctypes.POINTER(c_int)),
                ("symmetric", c_int)]


def _load():
    path = os.environ.get("Q4TUNE_LIBRARY") or "libq4tune.so.0"
    try:
        return ctypes.CDLL(path)
    except OSError as e:
        raise ImportError(f"q4tune: cannot load the C library {path!r} ({e}); build it (cmake --build build) "
                          "and set Q4TUNE_LIBRARY to build/libq4tune.so, or install it") from e


lib = _load()

_W = ctypes.POINTER(WeightsStruct)
_H = ctypes.POINTER(HostMatrixStruct)
# name: (result, argument types); every q4_status function returns c_int
_PROTOTYPES = {
    "q4_status_name": (c_char_p, [c_int]),
    "q4_last_error": (c_char_p, []),
    "q4_create": (c_int, [c_int, c_char_p, ctypes.POINTER(c_void_p)]),
    "q4_destroy": (None, [c_void_p]),
    "q4_weights_check": (c_int, [_W]),
    "q4_matmul": (c_int, [c_void_p, _W, c_void_p, c_void_p, c_int, c_void_p]),
    "q4_kernel_name": (c_int, [c_void_p, _W, c_int, c_char_p, c_size_t, ctypes.POINTER(c_int)]),
    "q4_set_early_launch": (c_int, [c_void_p, c_int]),
    "q4_sparse_pack": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_void_p, c_void_p, c_void_p]),
    "q4_sparse_validate": (c_int, [c_void_p, c_void_p, c_int, c_int, c_void_p]),
    "q4_sparse_unpack": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_int, c_void_p, c_void_p, c_void_p]),
    "q4_gptq_import": (c_int, [c_char_p, c_char_p, c_int, _H]),
    "q4_host_matrix_free": (None, [_H]),
    "q4_host_matrix_dequant": (ctypes.c_double, [_H, c_int, c_int]),
    "q4_quantize_rtn": (c_int, [c_void_p, c_int, c_int, c_int, c_int, _H]),
}
for _name, (_res, _args) in _PROTOTYPES.items():
    _fn = getattr(lib, _name)
    _fn.restype, _fn.argtypes = _res, _args


def status_name(status):
    """The library's constant name for a status ("Q4_ERR_DB")."""
    return lib.q4_status_name(int(status)).decode()


def check(status):
    """Raise Error for a failed call, with the calling thread's message."""
    if status != Status.OK:
        raise Error(status, lib.q4_last_error().decode(errors="replace"))
