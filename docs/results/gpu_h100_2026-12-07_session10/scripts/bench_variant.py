"""Session 10: tools/benchmark.py with SS2D.scan swapped for a variant of prof_vmamba.py, one process per
variant: bench_variant.py {shipped|bd} BENCHMARK ARGS...  Run as scratch/bench_variant.py (call C).
"shipped" is SS2D.scan as checked out: in call C the grouped convs of commit 00cf5aa; since d359096 it takes
the block-diagonal matmuls itself when training on CUDA.  "bd" is those matmuls always."""
import os, sys
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = next(p for p in (HERE.rsplit("/", k)[0] for k in range(1, 6)) if os.path.isdir(os.path.join(p, "tools")))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import prof_vmamba as P
from vision_mamba.layers import ss2d as S
import benchmark
S.SS2D.scan = P.VARIANTS[sys.argv[1]]
sys.exit(benchmark.main(sys.argv[2:]))
