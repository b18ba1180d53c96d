"""q4tune from Python: int4-weight matrix products on the GPU, y = x · W.

A thin layer over libq4tune's C API (include/q4tune.h), through ctypes.
Device arrays are PyTorch CUDA tensors, or plain integers holding device
addresses (then the sizes are given too). Every failure of the library
raises q4tune.Error, with its status and message; arguments this layer can
check itself (types, shapes, devices) raise TypeError or ValueError first.

    import torch, q4tune
    with q4tune.Handle(0) as h:
        w = q4tune.Weights(qweight, scales, zeros)   # int32 [K/8][N], fp16 [G][N] twice
        y = h.matmul(x, w)                           # x fp16 [..., K] -> y fp16 [..., N]

Weights are laid out as docs/FORMATS.md says; pass `mask` for 16:32
sparse (q4s) weights. Handle.sparse_pack builds those from dense codes.
"""
import array
import ctypes

from ._capi import Error, HostMatrixStruct, Status, WeightsStruct, check, lib, status_name

__all__ = ["Error", "Status", "status_name", "Weights", "Handle", "HostMatrix", "quantize_rtn", "gptq_import"]
__version__ = "0.1.0"

FORMAT_Q4, FORMAT_Q4S = 0, 1


# ---- device arrays: torch tensors or raw addresses ---------------------------

def _is_tensor(a):
    return hasattr(a, "data_ptr") and hasattr(a, "dtype") and hasattr(a, "shape")


_torch_module = None
_dtype_sets = {}


def _torch():
    """torch, imported on first use: only calls that take or make tensors need it."""
    global _torch_module
    if _torch_module is None:
        import torch
        _torch_module = torch
    return _torch_module


def _dtypes(names):
    """The torch dtypes of these names that this torch has (uint32 only from 2.3)."""
    found = _dtype_sets.get(names)
    if found is None:
        found = _dtype_sets[names] = frozenset(d for d in (getattr(_torch(), n, None) for n in names) if d is not None)
    return found


# Called for every array of every product: the cheapest checks first
# (torch's `is_cuda` costs a third of `device.type`), messages only once
# one fails.
def _tensor(name, t, dtypes, shape=None, device=None):
    """Check a CUDA tensor argument; return its device address."""
    try:
        on_gpu = t.is_cuda
    except AttributeError:
        raise TypeError(f"{name}: expected a torch tensor, got {type(t).__name__}") from None
    if not on_gpu:
        raise ValueError(f"{name}: must be on a CUDA device, not {t.device}")
    if device is not None and t.device != device:
        raise ValueError(f"{name}: on {t.device}, the other arrays on {device}")
    if t.dtype not in _dtypes(dtypes):
        raise TypeError(f"{name}: dtype {str(t.dtype).replace('torch.', '')}, expected {' or '.join(dtypes)}")
    if shape is not None and t.shape != shape:
        raise ValueError(f"{name}: shape {tuple(t.shape)}, expected {tuple(shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name}: must be contiguous")
    return t.data_ptr()


def _matrix(name, t, what):
    """t, a tensor that must be 2-D (`what` names its layout in the message)."""
    if not _is_tensor(t) or t.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D tensor {what}")
    return t


def _address(name, a):
    """A raw device address: an int (or None for an absent array)."""
    if a is None:
        return None
    if isinstance(a, bool) or not isinstance(a, int):
        raise TypeError(f"{name}: expected a device address (int) when qweight is one, got {type(a).__name__}")
    return a


_WORDS = ("int32", "uint32")  # 32-bit words
_HALF = ("float16",)


def _stream(stream, device):
    """A CUstream for the call: the one given (an int or a torch stream), else
    torch's current stream on `device` (NULL, the legacy default stream, without one)."""
    global _raw_stream
    if stream is not None:
        return getattr(stream, "cuda_stream", stream)
    if device is None:
        return None
    if _raw_stream is None:
        torch = _torch()
        # the fast way where torch has it (a third of current_stream()'s time)
        _raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None) or (
            lambda index: torch.cuda.current_stream(index).cuda_stream)
    return _raw_stream(device.index if device.index is not None else _torch().cuda.current_device())


_raw_stream = None


# ---- weights -------------------------------------------------------------------

class Weights:
    """A weight matrix W[K][N] in device memory (struct q4_weights).

    With tensors the sizes come from their shapes: qweight int32 [K/8][N]
    (q4) or [K/16][N] (q4s, when `mask`, int32 [K/32][N], is given), scales
    and zeros fp16 [G][N] with group_size = K / G, perm int32 [K] for
    act-order weights. `symmetric=True`: every zero is 8 and zeros may be
    None. With raw device addresses (ints) give n and k (group_size 0 is
    per-channel). The descriptor is checked at once (q4_weights_check, no
    GPU needed); it keeps the arrays as its attributes of the same names,
    and so the tensors alive.
    """

    def __init__(self, qweight, scales, zeros=None, *, mask=None, perm=None, symmetric=False,
                 n=None, k=None, group_size=None):
        sparse = mask is not None
        if _is_tensor(qweight):
            ptrs, dims, self.device = self._from_tensors(qweight, scales, zeros, mask, perm, symmetric, sparse)
            for given, name, value in ((n, "n", dims[0]), (k, "k", dims[1]), (group_size, "group_size", dims[2])):
                if given is not None and given != value:
                    raise ValueError(f"{name}={given} disagrees with the tensors' {name}={value}")
        else:
            if n is None or k is None:
                raise TypeError("weights given as device addresses need n and k")
            ptrs = [_address(nm, a) for nm, a in
                    (("qweight", qweight), ("scales", scales), ("zeros", zeros), ("mask", mask), ("perm", perm))]
            dims, self.device = (n, k, group_size or 0), None
        # the arrays as given (tensors stay alive as long as the descriptor)
        self.qweight, self.scales, self.zeros, self.mask, self.perm = qweight, scales, zeros, mask, perm
        self.n, self.k, self.group_size = dims
        self.format = "q4s" if sparse else "q4"
        self.symmetric = bool(symmetric)
        self._struct = WeightsStruct(FORMAT_Q4S if sparse else FORMAT_Q4, dims[0], dims[1], dims[2], *ptrs,
                                     1 if symmetric else 0)
        check(lib.q4_weights_check(ctypes.byref(self._struct)))

    @staticmethod
    def _from_tensors(qweight, scales, zeros, mask, perm, symmetric, sparse):
        rows, n = _matrix("qweight", qweight, "[K/8][N] (q4) or [K/16][N] (q4s)").shape
        dev = qweight.device
        k = rows * (16 if sparse else 8)
        groups = _matrix("scales", scales, f"[G][N] with G dividing K = {k}").shape[0]
        if groups < 1 or k % groups:
            raise ValueError(f"scales: expected a 2-D tensor [G][N] with G dividing K = {k}")
        ptrs = [_tensor("qweight", qweight, _WORDS, device=dev),
                _tensor("scales", scales, _HALF, (groups, n), dev)]
        if zeros is None and not symmetric:
            raise ValueError("zeros: needed unless symmetric=True")
        ptrs.append(None if zeros is None else _tensor("zeros", zeros, _HALF, (groups, n), dev))
        ptrs.append(None if mask is None else _tensor("mask", mask, _WORDS, (k // 32, n), dev))
        ptrs.append(None if perm is None else _tensor("perm", perm, ("int32",), (k,), dev))
        return ptrs, (n, k, k // groups), dev

    def __repr__(self):
        g = "per-channel" if self.group_size in (0, self.k) else f"group {self.group_size}"
        return f"<q4tune.Weights {self.format} N={self.n} K={self.k} {g}{' symmetric' if self.symmetric else ''}>"


# ---- the handle ------------------------------------------------------------------

class Handle:
    """A q4tune handle on one CUDA device (q4_create), with its tuning database.

    db: the database file; None means $Q4TUNE_DB, else the user's cache
    (~/.cache/q4tune/tuning.db). Close it with close() or a `with` block.
    """

    def __init__(self, device=0, db=None):
        h = ctypes.c_void_p()
        check(lib.q4_create(int(device), None if db is None else str(db).encode(), ctypes.byref(h)))
        self._h, self.device_index = h, int(device)

    def close(self):
        """Release the handle and what it compiled (q4_destroy). Idempotent."""
        h, self._h = getattr(self, "_h", None), None
        if h:
            lib.q4_destroy(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def _handle(self):
        if not self._h:
            raise ValueError("q4tune.Handle: used after close()")
        return self._h

    def matmul(self, x, w, out=None, *, m=None, stream=None):
        """y = x · W, enqueued on `stream` (default: torch's current stream).

        x: fp16 CUDA tensor [..., K], contiguous; returns out, fp16 [..., N]
        (allocated when not given). With device addresses (ints) for x and
        out, give m (the rows of x) and optionally a CUstream as an int.
        """
        if not isinstance(x, int):  # a tensor (_tensor says if it is not)
            xp = _tensor("x", x, _HALF, device=w.device)
            dev, xs = x.device, x.shape
            if not xs or xs[-1] != w.k:
                raise ValueError(f"x: shape {tuple(xs)}, expected [..., K = {w.k}]")
            self._check_device(dev)
            shape = (*xs[:-1], w.n)
            if out is None:
                out = x.new_empty(shape)
            yp = _tensor("out", out, _HALF, shape, dev)
            m = x.numel() // w.k
            if m == 0:
                return out
            stream = _stream(stream, dev)
        else:
            if m is None or out is None:
                raise TypeError("x given as a device address needs out (an address) and m")
            xp, yp = _address("x", x), _address("out", out)
            stream = _stream(stream, None)
            self._check_device(w.device)
        check(lib.q4_matmul(self._handle(), ctypes.byref(w._struct), xp, yp, int(m), stream))
        return out

    def kernel_name(self, w, m):
        """(name, tuned): the kernel matmul would run for w and m rows, and whether it is a tuned winner."""
        buf, tuned = ctypes.create_string_buffer(512), ctypes.c_int()
        check(lib.q4_kernel_name(self._handle(), ctypes.byref(w._struct), int(m), buf, len(buf), ctypes.byref(tuned)))
        return buf.value.decode(), bool(tuned.value)

    def set_early_launch(self, on):
        """Launch products as programmatic dependents of the kernel before them (sm_90+; see q4tune.h)."""
        check(lib.q4_set_early_launch(self._handle(), 1 if on else 0))

    def _check_device(self, dev):
        if dev is not None and dev.index is not None and dev.index != self.device_index:
            raise ValueError(f"arrays on {dev}, the handle on device {self.device_index}")

    # -- 16:32 sparse weights ------------------------------------------------------

    def sparse_pack(self, codes, keep, *, stream=None):
        """Pack dense codes and a 0/1 keep-mask (uint8 CUDA tensors [N][K]) into q4s.

        Returns (qweight int32 [K/16][N], mask int32 [K/32][N]). The input is
        validated on the GPU first: a code above 15, a keep value other than
        0 or 1, or a block of 32 rows not keeping 16 raises Error naming it.
        """
        n, k = _matrix("codes", codes, "[N][K] of uint8").shape
        cp = _tensor("codes", codes, ("uint8",), device=codes.device)
        kp = _tensor("keep", keep, ("uint8",), (n, k), codes.device)
        self._check_device(codes.device)
        if k % 32 or n % 8:
            raise ValueError(f"codes: N = {n} must be a multiple of 8 and K = {k} of 32")
        torch = _torch()
        qweight = torch.empty((k // 16, n), dtype=torch.int32, device=codes.device)
        mask = torch.empty((k // 32, n), dtype=torch.int32, device=codes.device)
        check(lib.q4_sparse_pack(self._handle(), cp, kp, n, k, qweight.data_ptr(), mask.data_ptr(),
                                 _stream(stream, codes.device)))
        return qweight, mask

    def sparse_validate(self, mask, *, stream=None):
        """Check a q4s mask (int32 CUDA tensor [K/32][N]): Error names the first word without 16 bits set."""
        mp = _tensor("mask", _matrix("mask", mask, "[K/32][N] of int32"), _WORDS, device=mask.device)
        self._check_device(mask.device)
        check(lib.q4_sparse_validate(self._handle(), mp, mask.shape[1], 32 * mask.shape[0],
                                     _stream(stream, mask.device)))

    def sparse_unpack(self, qweight, mask, *, stream=None):
        """The inverse of sparse_pack: (codes, keep), uint8 [N][K], pruned rows code 0 and keep 0."""
        n, k = _matrix("mask", mask, "[K/32][N] of int32").shape[1], 32 * mask.shape[0]
        mp = _tensor("mask", mask, _WORDS, device=mask.device)
        qp = _tensor("qweight", qweight, _WORDS, (k // 16, n), mask.device)
        self._check_device(mask.device)
        torch = _torch()
        codes = torch.empty((n, k), dtype=torch.uint8, device=mask.device)
        keep = torch.empty((n, k), dtype=torch.uint8, device=mask.device)
        check(lib.q4_sparse_unpack(self._handle(), qp, mp, n, k, codes.data_ptr(), keep.data_ptr(),
                                   _stream(stream, mask.device)))
        return codes, keep


# ---- weights in host memory: quantization and checkpoint import ------------------

def _copy(typecode, pointer, count):
    """count elements of a C array into a Python array (None for a NULL pointer)."""
    if not pointer:
        return None
    a = array.array(typecode)
    a.frombytes(ctypes.string_at(pointer, count * a.itemsize))
    return a


class HostMatrix:
    """A weight matrix in host memory, in q4tune's dense layout (struct q4_host_matrix).

    Made by quantize_rtn or gptq_import. qweight, scales and zeros are
    copies as arrays ('I' words [K/8][N], 'H' fp16 bits [G][N]), perm a
    list or None; dequant(row, col) is (q - z) * s of one element.
    """

    def __init__(self, struct):
        self._m = struct
        self.n, self.k, self.group_size = struct.n, struct.k, struct.group_size
        self.symmetric = bool(struct.symmetric)
        groups = self.k // self.group_size
        self.qweight = _copy("I", struct.qweight, self.k // 8 * self.n)
        self.scales = _copy("H", struct.scales, groups * self.n)
        self.zeros = _copy("H", struct.zeros, groups * self.n)
        self.perm = list(_copy("i", struct.perm, self.k)) if struct.perm else None

    def close(self):
        """Free the C arrays (the Python copies stay)."""
        m, self._m = getattr(self, "_m", None), None
        if m is not None:
            lib.q4_host_matrix_free(ctypes.byref(m))

    def __del__(self):
        self.close()

    def dequant(self, row, col):
        """(q - z) * s of row `row` (in this matrix's order) and column `col`."""
        if not (0 <= row < self.k and 0 <= col < self.n):
            raise IndexError(f"({row}, {col}) outside K = {self.k} x N = {self.n}")
        if self._m is None:
            raise ValueError("q4tune.HostMatrix: used after close()")
        return lib.q4_host_matrix_dequant(ctypes.byref(self._m), row, col)

    def to_weights(self, device="cuda"):
        """The matrix copied to a CUDA device as torch tensors, described by a Weights."""
        torch = _torch()
        groups = self.k // self.group_size

        def upload(a, dtype, shape):
            return torch.frombuffer(bytearray(a.tobytes()), dtype=dtype).reshape(shape).to(device)

        qweight = upload(self.qweight, torch.int32, (self.k // 8, self.n))
        scales = upload(self.scales, torch.float16, (groups, self.n))
        zeros = upload(self.zeros, torch.float16, (groups, self.n))
        perm = None if self.perm is None else torch.tensor(self.perm, dtype=torch.int32, device=device)
        return Weights(qweight, scales, zeros, perm=perm, symmetric=self.symmetric)

    def __repr__(self):
        return f"<q4tune.HostMatrix N={self.n} K={self.k} group {self.group_size}>"


def _floats(w, k, n):
    """w as contiguous float32 values in host memory: (owner, address, k, n), k and n
    from a 2-D array's shape if not given; owner keeps the values alive."""
    if _is_tensor(w):
        if w.is_cuda:
            raise ValueError("w: expected host memory, not a CUDA tensor")
        owner = w.detach().to(dtype=_torch().float32).contiguous()
        shape, count, address = tuple(owner.shape), owner.numel(), owner.data_ptr()
    else:
        mv = memoryview(w)
        if mv.format != "f" or not mv.c_contiguous:
            raise TypeError("w: expected a C-contiguous buffer of float32 (format 'f')")
        owner = array.array("f")
        owner.frombytes(mv.cast("B"))
        shape, count, address = mv.shape, len(owner), owner.buffer_info()[0]
    if k is None or n is None:
        if len(shape) != 2:
            raise TypeError("w: give k and n, or a 2-D array [K][N]")
        k, n = shape
    if count != k * n:
        raise ValueError(f"w: {count} values, expected K * N = {k * n}")
    return owner, address, k, n


def quantize_rtn(w, k=None, n=None, group_size=0, symmetric=False):
    """Round-to-nearest int4 quantization of w[K][N] (float32, host memory) per group of rows.

    w: a 2-D float32 buffer or CPU tensor, or any float32 buffer with k and
    n given. group_size 0 (or K) is per-channel. Returns a HostMatrix.
    """
    owner, address, k, n = _floats(w, k, n)
    m = HostMatrixStruct()
    check(lib.q4_quantize_rtn(address, k, n, group_size, 1 if symmetric else 0, ctypes.byref(m)))
    return HostMatrix(m)


_GPTQ_VERSIONS = {"auto": 0, "v1": 1, "v2": 2}


def gptq_import(path, prefix, version="auto"):
    """Layer `prefix` of a GPTQ safetensors checkpoint as a HostMatrix (docs/IMPORT.md).

    version: "v1" (qzeros hold zero - 1), "v2", or "auto" (from the
    checkpoint's quantize_config.json, else v1).
    """
    if version not in _GPTQ_VERSIONS:
        raise ValueError(f"version: {version!r}, expected one of {', '.join(_GPTQ_VERSIONS)}")
    m = HostMatrixStruct()
    check(lib.q4_gptq_import(str(path).encode(), prefix.encode(), _GPTQ_VERSIONS[version], ctypes.byref(m)))
    return HostMatrix(m)
