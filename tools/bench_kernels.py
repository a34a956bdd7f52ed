#!/usr/bin/env python3
"""Compare the selective-scan backends (forward and forward+backward time, optional error check).

    python3 tools/bench_kernels.py                      # CPU: reference vs torch on cpu_vmamba, cpu_vim
    python3 tools/bench_kernels.py --check              # ... plus rel. errors of y and every gradient
    python3 tools/bench_kernels.py --device cuda --dtype bf16 fp16 --shapes vim_s_layer long
    python3 tools/bench_kernels.py --shape 2,64,100,16,1,z --backends reference torch
    python3 tools/bench_kernels.py --device cuda --shapes vim_s_1248 --layout token-major --check

The work is done by vision_mamba.bench.kernels; this file only parses the command line.
"""
from __future__ import annotations

import argparse
import sys

from vision_mamba.bench import kernels as bench


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Benchmark the selective-scan backends on named shapes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="named shapes (batch, dim, L, N, G, z):\n" + "\n".join(
            f"  {s.name:<16} {s.describe()}" for s in bench.SHAPES.values()))
    p.add_argument("--shapes", nargs="+", metavar="NAME", choices=list(bench.SHAPES),
                   help=f"named shapes (default: {' '.join(bench.CPU_SHAPES)} on CPU, "
                        f"{' '.join(bench.GPU_SHAPES)} on CUDA)")
    p.add_argument("--shape", action="append", default=[], metavar="B,D,L,N,G[,z]", type=_shape_arg,
                   help="a custom shape, e.g. 2,64,100,16,1,z (repeatable; replaces the default shapes)")
    p.add_argument("--backends", nargs="+", metavar="NAME", choices=list(bench.ALL_BACKENDS),
                   help="reference, torch, triton, mamba_ssm (default: reference torch on CPU; "
                        "torch triton, plus mamba_ssm when it imports, on CUDA)")
    p.add_argument("--dtype", nargs="+", metavar="DTYPE", choices=list(bench.DTYPES), dest="dtypes",
                   help="fp32, bf16, fp16; several allowed (default: fp32 on CPU, bf16 on CUDA)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=bench.default_device(),
                   help="default: cuda when available, else cpu")
    p.add_argument("--repeats", type=int, help="timed calls per measurement (default: 10 CPU, 50 CUDA); "
                                               "the reference backend uses min(repeats, max(3, repeats//5))")
    p.add_argument("--warmup", type=int, help="untimed calls first (default: 2 CPU, 10 CUDA; reference: <= 1)")
    p.add_argument("--layout", choices=bench.LAYOUTS, default="channel-major",
                   help="how the inputs sit in memory: contiguous (batch, dim, L) (the training path), or "
                        "the token-major views Vim's inference path hands over (default: %(default)s)")
    p.add_argument("--check", action="store_true",
                   help="also report ||x - x_ref|| / ||x_ref|| of y and of every gradient against the "
                        "reference backend on fp32 copies of the inputs")
    p.add_argument("--json", default="results/bench_kernels.json", metavar="PATH",
                   help="where to write all results and metadata (default: %(default)s; '' to skip)")
    p.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar / per-row lines on stderr")
    return p


def _shape_arg(spec: str):
    try:
        return bench.parse_shape(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    device = args.device
    rep_default, warm_default = bench.default_repeats(device)
    shapes = list(args.shapes or []) + args.shape or bench.default_shapes(device)
    backends = args.backends or bench.default_backends(device)
    dtypes = args.dtypes or bench.default_dtypes(device)
    repeats = rep_default if args.repeats is None else args.repeats
    warmup = warm_default if args.warmup is None else args.warmup
    try:
        bench.validate(backends, dtypes, device)
        if repeats < 1 or warmup < 0:
            raise ValueError("--repeats must be >= 1 and --warmup >= 0")
    except ValueError as exc:
        parser.error(str(exc))
    return bench.run_and_report(shapes, backends, dtypes, device, repeats, warmup, args.check, args.json or None,
                                seed=args.seed, progress=not args.no_progress, markdown=args.markdown,
                                layout=args.layout,
                                argv=[sys.executable, *sys.argv] if argv is None else ["bench_kernels.py", *argv])


if __name__ == "__main__":
    sys.exit(main())
