"""Host time of one `selective_scan(backend="triton")` call with the kernels stubbed out (session 8, CPU):
what tools/bench_kernels.py's per-call timing (synchronised before each call) adds to a kernel's time
compared with calling `triton_fused.forward` directly.  Run on any machine: python host_overhead.py"""
import os
import statistics
import timeit

os.environ["TRITON_INTERPRET"] = "1"          # the API's triton backend then accepts CPU tensors
import torch  # noqa: E402

from vision_mamba.bench.kernels import ScanShape, make_inputs  # noqa: E402
from vision_mamba.kernels.selective import selective_scan, triton_fused  # noqa: E402

ins = make_inputs(ScanShape("s", 8, 768, 64, 16, 1, True), torch.bfloat16, "cpu", layout="token-major")


def stub(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, *, reverse=False,
         kernel="auto", store_checkpoints=True):
    return torch.empty_like(u), torch.empty(u.shape[0], u.shape[1], 1, A.shape[1])


triton_fused.forward = stub                   # the custom op calls triton_fused.forward at run time


def per_call_us(fn, n=500):
    timeit.repeat(fn, number=1, repeat=50)    # warm-up (first-call dispatch caches)
    return statistics.median(timeit.repeat(fn, number=1, repeat=n)) * 1e6


with torch.no_grad():
    api = per_call_us(lambda: selective_scan(**ins, delta_softplus=True, backend="triton"))
    direct = per_call_us(lambda: stub(**ins, delta_softplus=True, store_checkpoints=False))
print(f"selective_scan(backend='triton') with the kernels stubbed: {api:.0f} us per call; the stub alone: {direct:.0f} us")
