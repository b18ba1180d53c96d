#!/usr/bin/env python3
"""Host time of one q4tune Handle.matmul call from Python, against the GPU
time of a product: CUDA events over the same calls, and over products
replayed from a CUDA graph. Also the Python wrapper's own share (the
library's q4_matmul stubbed out). Default kernels (an empty database),
M = 1, weights not rotated (so partly L2-warm: not a bandwidth figure).

    Q4TUNE_LIBRARY=build/libq4tune.so PYTHONPATH=python python3 scripts/python_overhead.py
"""
import ctypes
import os
import tempfile
import time
import timeit

import torch

import q4tune

CALLS = 2000
GRAPH_CALLS = 200  # products captured in one graph, replayed CALLS / GRAPH_CALLS times


def gpu_us(launch, count):
    """GPU time of `count` products launched by launch(), per product."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    launch()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / count


def host_us(call, count=500):
    """Host time of one call. The GPU is held busy first (torch.cuda._sleep,
    about 20 ms), so the launches only queue (fewer than the driver's queue
    holds) and the loop never waits for the GPU."""
    torch.cuda.synchronize()
    torch.cuda._sleep(40_000_000)
    t0 = time.perf_counter()
    for _ in range(count):
        call()
    us = (time.perf_counter() - t0) / count * 1e6
    torch.cuda.synchronize()
    return us


class _StubLibrary:
    """libq4tune with q4_matmul doing nothing: what the wrapper alone costs."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    @staticmethod
    def q4_matmul(*args):
        return 0


def wrapper_us(call):
    """Host time of one call with the library stubbed out (best of 5 x 20000)."""
    real, q4tune.lib = q4tune.lib, _StubLibrary(q4tune.lib)
    try:
        return min(timeit.repeat(call, number=20000, repeat=5)) / 20000 * 1e6
    finally:
        q4tune.lib = real


def main():
    with tempfile.TemporaryDirectory() as tmp, q4tune.Handle(0, db=os.path.join(tmp, "tuning.db")) as h:
        for n, k in ((4096, 4096), (22016, 4096)):
            qweight = torch.randint(-2**31, 2**31 - 1, (k // 8, n), dtype=torch.int32, device="cuda")
            scales = torch.full((1, n), 0.01, dtype=torch.float16, device="cuda")
            zeros = torch.full((1, n), 8.0, dtype=torch.float16, device="cuda")
            w = q4tune.Weights(qweight, scales, zeros)
            x = torch.randn(1, k, dtype=torch.float16, device="cuda")
            y = torch.empty(1, n, dtype=torch.float16, device="cuda")
            for _ in range(50):  # the first call loads the kernel
                h.matmul(x, w, y)

            host = host_us(lambda: h.matmul(x, w, y))
            xp, yp, stream = x.data_ptr(), y.data_ptr(), torch.cuda.current_stream().cuda_stream
            raw = host_us(lambda: h.matmul(xp, w, yp, m=1, stream=stream))
            # q4_matmul through ctypes alone: what the C library and ctypes cost
            c_call = q4tune.lib.q4_matmul
            args = (h._handle(), ctypes.byref(w._struct), xp, yp, 1, stream)
            bare = host_us(lambda: c_call(*args))
            wrap = wrapper_us(lambda: h.matmul(x, w, y))
            wrap_alloc = wrapper_us(lambda: h.matmul(x, w))
            wrap_raw = wrapper_us(lambda: h.matmul(xp, w, yp, m=1, stream=stream))

            def loop():
                for _ in range(CALLS):
                    h.matmul(x, w, y)
            looped = gpu_us(loop, CALLS)

            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(GRAPH_CALLS):
                    h.matmul(x, w, y)
            graph.replay()

            def replay():
                for _ in range(CALLS // GRAPH_CALLS):
                    graph.replay()
            graphed = gpu_us(replay, CALLS)
            print(f"{n} x {k} M=1: host {host:.2f} us a call (raw addresses {raw:.2f}, "
                  f"q4_matmul through ctypes {bare:.2f}); GPU a product: "
                  f"loop {looped:.2f} us, graph {graphed:.2f} us; kernel {h.kernel_name(w, 1)[0]}")
            print(f"  the wrapper alone (q4_matmul stubbed): {wrap:.2f} us a call, {wrap_alloc:.2f} with out "
                  f"allocated, {wrap_raw:.2f} with raw addresses")


if __name__ == "__main__":
    main()
