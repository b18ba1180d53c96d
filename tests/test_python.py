"""test_python.py -- the Python binding (python/q4tune) against the C library.

Without a GPU (CI): status names against the library's, the error raised
when the driver is missing, weight descriptors checked by the library,
round-to-nearest quantization and GPTQ import in host memory. With torch
and a CUDA device (scripts/gpu_tests.sh python): products of dense and
16:32 sparse weights against a float32 reference, sparse packing round
trips and their errors, raw device addresses, host quantization uploaded
and multiplied, a CUDA graph's capture, argument errors.

Run from the build directory's ctest, or by hand:
    Q4TUNE_LIBRARY=build/libq4tune.so PYTHONPATH=python python3 tests/test_python.py
"""
import array
import ctypes
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import unittest
import warnings

import q4tune
from q4tune import Error, Status


def _gpu_torch():
    """torch, where it is installed and sees a CUDA device; else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


torch = _gpu_torch()
# Q4TUNE_TEST_GPU=1 (scripts/gpu_tests.sh python): the GPU tests must run, not skip
if torch is None and os.environ.get("Q4TUNE_TEST_GPU") == "1":
    sys.exit("test_python: Q4TUNE_TEST_GPU=1, but torch with a CUDA device is not available")
needs_gpu = unittest.skipUnless(torch is not None, "needs torch and a CUDA device")


def half(bits):
    return struct.unpack("<e", struct.pack("<H", bits))[0]


class Statuses(unittest.TestCase):
    def test_names_match_the_library(self):
        for s in Status:
            want = "Q4_OK" if s == Status.OK else "Q4_ERR_" + s.name
            self.assertEqual(q4tune.status_name(s), want)

    def test_error_carries_status_and_message(self):
        with self.assertRaises(Error) as cm:
            q4tune.Handle(-1)
        self.assertEqual(cm.exception.status, Status.INVALID_ARG)
        self.assertIn("negative", cm.exception.message)
        self.assertTrue(str(cm.exception).startswith("Q4_ERR_INVALID_ARG: "))


class NoDriver(unittest.TestCase):
    def test_handle_says_the_driver_is_missing(self):
        # in a child process, so that this one's driver (if any) stays loadable
        code = ("import q4tune\n"
                "try:\n    q4tune.Handle(0)\n"
                "except q4tune.Error as e:\n    print(int(e.status), e.message)\n")
        env = dict(os.environ, Q4TUNE_LIBCUDA="/nonexistent/libcuda.so.1")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        status, _, message = out.stdout.strip().partition(" ")
        self.assertEqual(int(status), Status.NO_DRIVER, out.stdout + out.stderr)
        self.assertIn("/nonexistent/libcuda.so.1", message)


class WeightDescriptors(unittest.TestCase):
    """Raw device addresses: q4_weights_check reads none of them."""
    BASE = 1 << 32

    def weights(self, **kw):
        args = dict(qweight=self.BASE, scales=self.BASE + 0x100000, zeros=self.BASE + 0x200000, n=4096, k=4096)
        args.update(kw)
        return q4tune.Weights(args.pop("qweight"), args.pop("scales"), args.pop("zeros"), **args)

    def assertFails(self, status, text, **kw):
        with self.assertRaises(Error) as cm:
            self.weights(**kw)
        self.assertEqual(cm.exception.status, status, cm.exception)
        self.assertIn(text, cm.exception.message)

    def test_valid(self):
        w = self.weights(group_size=128)
        self.assertEqual((w.format, w.n, w.k, w.group_size), ("q4", 4096, 4096, 128))
        self.assertEqual((w.qweight, w.mask), (self.BASE, None))
        self.assertEqual(self.weights(mask=self.BASE + 0x300000).format, "q4s")
        self.assertTrue(self.weights(zeros=None, symmetric=True).symmetric)

    def test_rejected_by_the_library(self):
        self.assertFails(Status.INVALID_ARG, "N=4100", n=4100)
        self.assertFails(Status.INVALID_ARG, "K=4112", k=4112)
        self.assertFails(Status.INVALID_ARG, "aligned", qweight=self.BASE + 4)
        self.assertFails(Status.INVALID_ARG, "zeros", zeros=None)
        self.assertFails(Status.UNSUPPORTED, "perm", mask=self.BASE + 0x300000, perm=self.BASE + 0x400000)

    def test_rejected_here(self):
        with self.assertRaises(TypeError):
            q4tune.Weights(self.BASE, self.BASE, self.BASE)  # no n, k
        with self.assertRaises(TypeError):
            self.weights(scales="0x1000")


class Quantize(unittest.TestCase):
    K, N = 96, 16

    def values(self, seed):
        rng = random.Random(seed)
        return array.array("f", [rng.gauss(0, 1) for _ in range(self.K * self.N)])

    def test_round_to_nearest(self):
        w = self.values(1)
        m = q4tune.quantize_rtn(w, self.K, self.N, group_size=32)
        self.assertEqual((m.n, m.k, m.group_size, m.symmetric, m.perm), (self.N, self.K, 32, False, None))
        self.assertEqual((len(m.qweight), len(m.scales), len(m.zeros)), (self.K // 8 * self.N, 3 * self.N, 3 * self.N))
        for g in range(3):
            for c in range(self.N):
                z, s = half(m.zeros[g * self.N + c]), half(m.scales[g * self.N + c])
                self.assertTrue(z == int(z) and 0 <= z <= 15, z)
                for r in range(32 * g, 32 * g + 32):
                    q = m.qweight[r // 8 * self.N + c] >> (4 * (r % 8)) & 15
                    deq = m.dequant(r, c)
                    self.assertAlmostEqual(deq, (q - z) * s, places=12)
                    # the group's range includes every value: one rounding of at most half a step
                    self.assertLessEqual(abs(deq - w[r * self.N + c]), s / 2 * 1.01 + 1e-6)

    def test_symmetric_per_channel(self):
        m = q4tune.quantize_rtn(self.values(2), self.K, self.N, symmetric=True)
        self.assertEqual((m.group_size, m.symmetric), (self.K, True))
        self.assertEqual({half(z) for z in m.zeros}, {8.0})

    def test_errors(self):
        with self.assertRaises(Error) as cm:
            q4tune.quantize_rtn(array.array("f", [0.0] * 12 * 8), 8, 12)
        self.assertEqual(cm.exception.status, Status.INVALID_ARG)
        with self.assertRaises(ValueError):
            q4tune.quantize_rtn(self.values(3), self.K, self.N + 8)
        with self.assertRaises(TypeError):
            q4tune.quantize_rtn(array.array("d", [0.0] * 64), 8, 8)
        with self.assertRaises(TypeError):
            q4tune.quantize_rtn(self.values(3))  # 1-D: no shape to take k and n from
        m = q4tune.quantize_rtn(self.values(4), self.K, self.N)
        with self.assertRaises(IndexError):
            m.dequant(self.K, 0)
        m.close()
        with self.assertRaises(ValueError):
            m.dequant(0, 0)


def write_safetensors(path, tensors):
    """tensors: name -> (dtype, shape, bytes)."""
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


class GptqImport(unittest.TestCase):
    K, N, G = 64, 16, 2

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        rng = random.Random(5)
        self.qweight = array.array("I", [rng.getrandbits(32) for _ in range(self.K // 8 * self.N)])
        self.zero_codes = [[rng.randrange(15) for _ in range(self.N)] for _ in range(self.G)]
        qzeros = array.array("I", [sum(self.zero_codes[g][8 * c + j] << (4 * j) for j in range(8))
                                   for g in range(self.G) for c in range(self.N // 8)])
        self.scales = array.array("H", [struct.unpack("<H", struct.pack("<e", 0.01 * (1 + i % 7)))[0]
                                        for i in range(self.G * self.N)])
        self.path = os.path.join(self.dir.name, "model.safetensors")
        write_safetensors(self.path, {
            "layer.qweight": ("I32", (self.K // 8, self.N), self.qweight.tobytes()),
            "layer.qzeros": ("I32", (self.G, self.N // 8), qzeros.tobytes()),
            "layer.scales": ("F16", (self.G, self.N), self.scales.tobytes()),
        })

    def tearDown(self):
        self.dir.cleanup()

    def test_versions(self):
        for version, offset in (("v1", 1), ("v2", 0)):
            m = q4tune.gptq_import(self.path, "layer", version)
            self.assertEqual((m.n, m.k, m.group_size, m.perm), (self.N, self.K, self.K // self.G, None))
            self.assertEqual(m.qweight, self.qweight)
            self.assertEqual(m.scales, self.scales)
            self.assertEqual([half(z) for z in m.zeros],
                             [float(self.zero_codes[g][c] + offset) for g in range(self.G) for c in range(self.N)])

    def test_errors(self):
        with self.assertRaises(Error) as cm:
            q4tune.gptq_import(os.path.join(self.dir.name, "absent.safetensors"), "layer")
        self.assertEqual(cm.exception.status, Status.IO)
        with self.assertRaises(Error) as cm:
            q4tune.gptq_import(self.path, "other")
        self.assertEqual(cm.exception.status, Status.INVALID_ARG)
        self.assertIn("other.qweight", cm.exception.message)
        with self.assertRaises(ValueError):
            q4tune.gptq_import(self.path, "layer", "v3")


# ---- on the GPU -------------------------------------------------------------------

def random_groups(gen, groups, n):
    scales = (torch.rand(groups, n, generator=gen) * 0.02 + 0.005).half()
    zeros = torch.randint(0, 16, (groups, n), generator=gen).float()
    zeros[:, ::4] += 0.375  # some fractional zeros too
    return scales, zeros.half()


def pack_dense(codes):
    """codes int [K][N] 0..15 -> qweight int32 [K/8][N] (docs/FORMATS.md)."""
    k, n = codes.shape
    c = codes.to(torch.int64).reshape(k // 8, 8, n)
    words = sum(c[:, i, :] << (4 * i) for i in range(8))
    return torch.where(words >= 2 ** 31, words - 2 ** 32, words).to(torch.int32)


def relative_error(y, ref):
    return ((y.float() - ref).norm() / ref.norm()).item()


@needs_gpu
class OnTheGpu(unittest.TestCase):
    N, K = 256, 512

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.h = q4tune.Handle(0, db=os.path.join(cls.dir.name, "tuning.db"))
        cls.gen = torch.Generator().manual_seed(7)

    @classmethod
    def tearDownClass(cls):
        cls.h.close()
        cls.dir.cleanup()

    def dense(self, group_size):
        groups = self.K // group_size
        codes = torch.randint(0, 16, (self.K, self.N), generator=self.gen)
        scales, zeros = random_groups(self.gen, groups, self.N)
        deq = (codes.float() - zeros.float().repeat_interleave(group_size, 0)) * scales.float().repeat_interleave(
            group_size, 0)
        w = q4tune.Weights(pack_dense(codes).cuda(), scales.cuda(), zeros.cuda())
        return w, deq.cuda()

    def sparse(self):
        codes = torch.randint(0, 16, (self.N, self.K), dtype=torch.uint8, generator=self.gen)
        # 16 of every 32 rows of each column, chosen at random
        order = torch.rand(self.N, self.K // 32, 32, generator=self.gen).argsort(dim=2)
        keep = (order < 16).to(torch.uint8).reshape(self.N, self.K)
        qweight, mask = self.h.sparse_pack(codes.cuda(), keep.cuda())
        back, back_keep = self.h.sparse_unpack(qweight, mask)
        torch.cuda.synchronize()
        self.assertTrue(torch.equal(back.cpu(), codes * keep))
        self.assertTrue(torch.equal(back_keep.cpu(), keep))
        self.h.sparse_validate(mask)
        scales, zeros = random_groups(self.gen, 1, self.N)
        deq = (keep * (codes.float() - zeros.float().T)).T * scales.float()
        return q4tune.Weights(qweight, scales.cuda(), zeros.cuda(), mask=mask), deq.cuda(), codes, keep

    def check_products(self, w, deq):
        for m in (1, 16, 100):
            x = torch.randn(m, self.K, generator=self.gen).half().cuda()
            y = torch.full((m, self.N), float("nan"), dtype=torch.float16, device="cuda")
            self.assertIs(self.h.matmul(x, w, y), y)
            torch.cuda.synchronize()
            self.assertTrue(torch.isfinite(y).all().item(), f"M = {m}: an element not written")
            err = relative_error(y, x.float() @ deq)
            self.assertLess(err, 2e-3, f"{w} M = {m}")
            name, tuned = self.h.kernel_name(w, m)
            self.assertTrue(name and "[" in name and not tuned, name)

    def test_dense(self):
        for group_size in (self.K, 128):
            w, deq = self.dense(group_size)
            self.assertEqual(w.group_size, group_size)
            self.check_products(w, deq)

    def test_sparse(self):
        w, deq, _, _ = self.sparse()
        self.assertEqual(w.format, "q4s")
        self.check_products(w, deq)

    def test_batched_x_and_raw_addresses(self):
        w, deq = self.dense(self.K)
        x = torch.randn(2, 3, self.K, generator=self.gen).half().cuda()
        y = self.h.matmul(x, w)
        self.assertEqual(tuple(y.shape), (2, 3, self.N))
        raw = q4tune.Weights(w.qweight.data_ptr(), w.scales.data_ptr(), w.zeros.data_ptr(), n=self.N, k=self.K)
        y2 = torch.empty(6, self.N, dtype=torch.float16, device="cuda")
        self.h.matmul(x.data_ptr(), raw, y2.data_ptr(), m=6, stream=torch.cuda.current_stream().cuda_stream)
        torch.cuda.synchronize()
        self.assertTrue(torch.equal(y.reshape(6, self.N), y2))
        self.assertLess(relative_error(y.reshape(6, self.N), x.reshape(6, self.K).float() @ deq), 2e-3)
        self.assertEqual(tuple(self.h.matmul(torch.empty(0, self.K, dtype=torch.float16, device="cuda"), w).shape),
                         (0, self.N))

    def test_quantized_on_the_gpu(self):
        # host quantization (from a CPU tensor), uploaded by to_weights, against its own dequantization
        for symmetric in (False, True):
            wf = torch.randn(self.K, self.N, generator=self.gen)
            m = q4tune.quantize_rtn(wf, group_size=128, symmetric=symmetric)
            w = m.to_weights("cuda")
            self.assertEqual((w.n, w.k, w.group_size, w.symmetric), (self.N, self.K, 128, symmetric))
            deq = torch.tensor([[m.dequant(r, c) for c in range(self.N)] for r in range(self.K)])
            self.assertLess(((deq - wf).norm() / wf.norm()).item(), 0.2)  # 4-bit RTN of Gaussian values
            x = torch.randn(16, self.K, generator=self.gen).half().cuda()
            y = self.h.matmul(x, w)
            torch.cuda.synchronize()
            self.assertLess(relative_error(y, x.float() @ deq.cuda()), 2e-3)

    def test_cuda_graph(self):
        # after a first call (which compiles), a product is one kernel launch
        # on torch's stream, so a CUDA graph can capture it
        w, deq = self.dense(self.K)
        x = torch.randn(16, self.K, generator=self.gen).half().cuda()
        y = torch.empty(16, self.N, dtype=torch.float16, device="cuda")
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self.h.matmul(x, w, y)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.h.matmul(x, w, y)
        for _ in range(2):
            x.copy_(torch.randn(16, self.K, generator=self.gen).half())
            y.fill_(float("nan"))
            graph.replay()
            torch.cuda.synchronize()
            self.assertLess(relative_error(y, x.float() @ deq), 2e-3)

    def test_cuda_graph_scratch(self):
        # From M = 512, where cuBLAS loads, a product expands W to fp16 in
        # scratch the handle keeps per stream. Captured on a stream no product
        # has sized it on, the call fails and says why; captured after one,
        # the graph stays right once a larger product there outgrows it.
        m = 600
        w, deq = self.dense(self.K)
        codes = torch.randint(0, 16, (2 * self.K, self.N), generator=self.gen)
        scales, zeros = random_groups(self.gen, 1, self.N)
        big = q4tune.Weights(pack_dense(codes).cuda(), scales.cuda(), zeros.cuda())
        big_deq = ((codes.float() - zeros.float()) * scales.float()).cuda()
        name, _ = self.h.kernel_name(w, m)
        if not name.startswith("q4_dqgemm"):
            self.skipTest(f"{name}: no scratch at M = {m}")
        x = torch.randn(m, self.K, generator=self.gen).half().cuda()
        y = torch.empty(m, self.N, dtype=torch.float16, device="cuda")
        self.h.matmul(x, w, y)  # loads the kernels
        torch.cuda.synchronize()
        # (the failed call leaves the graph empty, which torch warns about)
        with self.assertRaises(Error) as cm, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The CUDA Graph is empty")
            with torch.cuda.graph(torch.cuda.CUDAGraph(), stream=torch.cuda.Stream()):
                self.h.matmul(x, w, y)
        self.assertEqual(cm.exception.status, Status.UNSUPPORTED)
        self.assertIn("captured into a CUDA graph", cm.exception.message)
        warm = torch.cuda.Stream()
        warm.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(warm):
            self.h.matmul(x, w, y)
        warm.synchronize()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=warm):
            self.h.matmul(x, w, y)
        xb = torch.randn(m, 2 * self.K, generator=self.gen).half().cuda()
        torch.cuda.synchronize()
        with torch.cuda.stream(warm):
            yb = self.h.matmul(xb, big)  # twice the K: a larger fp16 chunk
        warm.synchronize()
        self.assertLess(relative_error(yb, xb.float() @ big_deq), 2e-3)
        for _ in range(2):
            x.copy_(torch.randn(m, self.K, generator=self.gen).half())
            y.fill_(float("nan"))
            graph.replay()
            torch.cuda.synchronize()
            self.assertLess(relative_error(y, x.float() @ deq), 2e-3)

    def test_sparse_errors(self):
        _, _, codes, keep = self.sparse()
        keep[5, 64 + 3] ^= 1  # column 5, rows 64..95: 15 or 17 kept
        with self.assertRaises(Error) as cm:
            self.h.sparse_pack(codes.cuda(), keep.cuda())
        self.assertEqual(cm.exception.status, Status.INVALID_ARG)
        self.assertIn("column 5", cm.exception.message)
        keep[5, 64 + 3] ^= 1
        _, mask = self.h.sparse_pack(codes.cuda(), keep.cuda())
        mask[2, 9] = 0x7FFF  # 15 bits
        with self.assertRaises(Error) as cm:
            self.h.sparse_validate(mask)
        self.assertIn("column 9", cm.exception.message)
        with self.assertRaises(TypeError):
            self.h.sparse_pack(codes.int().cuda(), keep.cuda())

    def test_argument_errors(self):
        w, _ = self.dense(self.K)
        x = torch.randn(4, self.K).half()
        with self.assertRaises(ValueError):
            self.h.matmul(x, w)  # host memory
        with self.assertRaises(TypeError):
            self.h.matmul(x.float().cuda(), w)
        with self.assertRaises(ValueError):
            self.h.matmul(x[:, :256].cuda(), w)
        with self.assertRaises(ValueError):
            self.h.matmul(x.cuda(), w, torch.empty(4, self.N + 8, dtype=torch.float16, device="cuda"))
        with self.assertRaises(ValueError):
            q4tune.Weights(w.qweight, w.scales, w.zeros.cpu())
        # out over x (or the weights) would be a wrong answer: the library refuses it
        xy = torch.empty(4 * max(self.K, self.N), dtype=torch.float16, device="cuda")
        xin = xy[: 4 * self.K].view(4, self.K).normal_()
        with self.assertRaises(q4tune.Error) as cm:
            self.h.matmul(xin, w, xy[: 4 * self.N].view(4, self.N))
        self.assertEqual(cm.exception.status, q4tune.Status.INVALID_ARG)
        self.assertIn("overlaps x", cm.exception.message)
        with self.assertRaises(q4tune.Error) as cm:
            self.h.matmul(xin.data_ptr(), w, w.qweight.data_ptr(), m=4)
        self.assertIn("qweight", cm.exception.message)
        with q4tune.Handle(0, db=os.path.join(self.dir.name, "other.db")) as h2:
            pass
        with self.assertRaises(ValueError):
            h2.matmul(x.cuda(), w)


if __name__ == "__main__":
    unittest.main(verbosity=2)
