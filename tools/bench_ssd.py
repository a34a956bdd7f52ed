#!/usr/bin/env python3
"""Time the SSD scan (Mamba-2) against the selective scan (Mamba-1) at matched state size, with the SSD
backends' errors against the sequential reference.

    python3 tools/bench_ssd.py --device cuda --dtype bf16 fp32 --check      # the four GPU shapes
    python3 tools/bench_ssd.py --device cpu --shape 2,256,197,16,1,z --backends reference torch --check

The work is done by vision_mamba.bench.ssd; this file only parses the command line.
"""
from __future__ import annotations

import argparse
import sys

from vision_mamba.bench import kernels as kb
from vision_mamba.bench import ssd


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="SSD scan vs selective scan on the selective-scan benchmark's shapes (dim = heads * headdim).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="named shapes (batch, dim, L, N, G, z):\n" + "\n".join(
            f"  {s.name:<16} {s.describe()}" for s in kb.SHAPES.values()))
    p.add_argument("--shapes", nargs="+", metavar="NAME", choices=list(kb.SHAPES),
                   help=f"named shapes (default: {' '.join(kb.GPU_SHAPES)})")
    p.add_argument("--shape", action="append", default=[], metavar="B,D,L,N,G[,z]", type=_shape_arg,
                   help="a custom shape (repeatable; replaces the default shapes)")
    p.add_argument("--backends", nargs="+", metavar="NAME", choices=list(ssd.SSD_BACKENDS),
                   help="SSD backends (default: torch triton on CUDA, reference torch on CPU)")
    p.add_argument("--selective-backend", choices=["reference", "torch", "triton"],
                   help="the selective scan's backend (default: triton on CUDA, torch on CPU)")
    p.add_argument("--dtype", nargs="+", metavar="DTYPE", choices=list(kb.DTYPES), dest="dtypes",
                   help="fp32, bf16, fp16 (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=kb.default_device())
    p.add_argument("--headdim", type=int, default=ssd.HEADDIM, help="channels per SSD head (default: %(default)s)")
    p.add_argument("--chunk-size", type=int, default=ssd.CHUNK_SIZE, help="SSD chunk length (default: %(default)s)")
    p.add_argument("--repeats", type=int, help="timed calls (default: 50 CUDA, 10 CPU)")
    p.add_argument("--warmup", type=int, help="untimed calls first (default: 10 CUDA, 2 CPU)")
    p.add_argument("--check", action="store_true",
                   help="also the relative error of y and every gradient of each SSD row against the SSD "
                        "reference on fp32 copies of the inputs")
    p.add_argument("--json", default="results/bench_ssd.json", metavar="PATH", help="(default: %(default)s; '' to skip)")
    p.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no per-row lines on stderr")
    return p


def _shape_arg(spec: str):
    try:
        return kb.parse_shape(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    rep_default, warm_default = kb.default_repeats(args.device)
    shapes = list(args.shapes or []) + args.shape or list(kb.GPU_SHAPES)
    backends = args.backends or (["torch", "triton"] if cuda else ["reference", "torch"])
    try:
        for s in kb.resolve_shapes(shapes):
            ssd.ssd_shape(s, args.headdim)
        kb.validate([b for b in backends if b != "reference"], args.dtypes or [], args.device)
    except ValueError as exc:
        parser.error(str(exc))
    return ssd.run_and_report(
        shapes, backends, args.dtypes or kb.default_dtypes(args.device), args.device,
        rep_default if args.repeats is None else args.repeats, warm_default if args.warmup is None else args.warmup,
        args.check, args.json or None, headdim=args.headdim, chunk_size=args.chunk_size,
        selective_backend=args.selective_backend, seed=args.seed, progress=not args.no_progress,
        markdown=args.markdown, argv=[sys.executable, *sys.argv] if argv is None else ["bench_ssd.py", *argv])


if __name__ == "__main__":
    sys.exit(main())
