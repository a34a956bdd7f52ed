#!/usr/bin/env python3
"""Latency, throughput and peak memory of timm models (ours and baselines) against resolution.

    python3 tools/benchmark.py --models vim_small_patch16_224 vit_small_patch16_224 --res 224 512 1024 \
        --batch 8 --dtype bf16                         # CUDA: inference, ViT with sdpa and eager attention
    python3 tools/benchmark.py --mode train --models vmamba_tiny_s1l8 swin_tiny_patch4_window7_224
    python3 tools/benchmark.py --device cpu --dtype fp32 --models vim_tiny_patch16_224 vit_tiny_patch16_224 \
        --res 64 128 --batch 1 --repeats 5 --warmup 1

Writes benchmark.json, benchmark.csv, memory.png and throughput.png to --out.  The work is done by
vision_mamba.bench.speed; this file only parses the command line.
"""
from __future__ import annotations

import argparse
import sys

import torch

from vision_mamba.bench import speed


def build_parser() -> argparse.ArgumentParser:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", metavar="NAME",
                   default=["vim_tiny_patch16_224", "vit_tiny_patch16_224"],
                   help="timm-registered model names (the project's register on import) (default: %(default)s)")
    p.add_argument("--res", nargs="+", type=int, default=[224, 512, 1024], metavar="PX",
                   help="square input resolutions (default: %(default)s)")
    p.add_argument("--batch", type=int, default=8, help="images per call (default: %(default)s)")
    p.add_argument("--mode", choices=speed.MODES, default="infer",
                   help="infer: no_grad forward; train: forward + backward + SGD step (default: %(default)s)")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16" if cuda else "fp32",
                   help="autocast dtype, weights stay fp32; on CPU fp32 or bf16 (CPU autocast) only "
                        "(default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--attn", nargs="+", choices=speed.ATTN_IMPLS, default=list(speed.ATTN_IMPLS),
                   help="attention implementations for models with timm's fused_attn switch (ViT, Swin, ...); "
                        "others run once (default: both)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--cuda-graphs", action="store_true",
                   help="inference on CUDA only: capture the call into a CUDA graph and time its replays "
                        "(rows labelled +graphs)")
    p.add_argument("--channels-last", action="store_true",
                   help="model and input in channels-last memory format, as timm's --channels-last "
                        "(rows labelled +cl)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if cuda else "cpu",
                   help="default: cuda when available, else cpu")
    p.add_argument("--repeats", type=int, default=20, help="timed calls (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5,
                   help="untimed calls after the probe call (default: %(default)s)")
    p.add_argument("--out", default="results/benchmark", metavar="DIR",
                   help="directory for JSON, CSV and PNGs (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no per-row lines on stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        speed.validate(args.models, args.res, args.batch, args.mode, args.dtype, args.attn, args.device,
                       args.repeats, args.warmup, args.cuda_graphs)
    except ValueError as exc:
        parser.error(str(exc))
    return speed.run_and_report(
        args.models, args.res, batch=args.batch, mode=args.mode, dtype=args.dtype, device=args.device,
        attns=args.attn, repeats=args.repeats, warmup=args.warmup, compile_=args.compile, out_dir=args.out,
        progress=not args.no_progress, cuda_graphs=args.cuda_graphs, channels_last=args.channels_last,
        argv=[sys.executable, *sys.argv] if argv is None else ["benchmark.py", *argv])


if __name__ == "__main__":
    sys.exit(main())
