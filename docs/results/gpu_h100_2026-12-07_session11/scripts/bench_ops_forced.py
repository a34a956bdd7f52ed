"""tools/benchmark.py with every Triton op forced through its custom op (the dispatch before session 11's
eager path), for a same-call before/after: python3 bench_ops_forced.py <benchmark.py arguments>."""
import runpy, sys
from vision_mamba.kernels.conv1d import triton_op as conv_op
from vision_mamba.kernels.orderings import triton_op as ord_op
from vision_mamba.kernels.selective import triton_op as sel_op

for m in (sel_op, conv_op, ord_op):
    m.traced = lambda *tensors: True
sys.argv = ["tools/benchmark.py", *sys.argv[1:]]
runpy.run_path("tools/benchmark.py", run_name="__main__")
