#!/usr/bin/env python3
"""Mixed-precision soak: each family trains N steps in bf16 and fp16 (loss scaler) on random data.

    python3 tools/soak.py --families vim_s vmamba_t twin umamba3d --dtypes bf16 fp16 --steps 1000 \\
        --json results/soak.json                     # on a CUDA device (docs/deployment.md has the timings)
    python3 tools/soak.py --steps 3 --tiny --device cpu    # CPU smoke test: tiny models, a few steps

The work is done by vision_mamba.bench.soak; this file only parses the command line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from vision_mamba.bench import soak


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Mixed-precision soak of the model families on random data.",
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="families:\n" + "\n".join(f"  {k:<10} {f.label}, {f.notes}"
                                                                 for k, f in soak.FAMILIES.items()))
    p.add_argument("--families", nargs="+", choices=list(soak.FAMILIES), default=list(soak.FAMILIES))
    p.add_argument("--dtypes", nargs="+", choices=list(soak.DTYPES), default=list(soak.DTYPES))
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps per run (default 1000)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="tiny models and inputs (a CPU smoke test)")
    p.add_argument("--json", default=None, help="write the rows and the run's metadata here")
    return p


def main(argv=None) -> list[dict]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps {args.steps}: expected >= 1")
    if args.lr <= 0:
        parser.error(f"--lr {args.lr}: expected > 0")
    console = soak.make_console()
    rows = soak.run_soak(args.families, args.dtypes, args.steps, args.device, tiny=args.tiny, lr=args.lr,
                         progress=lambda r: console.print(
                             f"{r.family} {r.dtype}: {r.non_finite_losses} non-finite losses, {r.skipped_steps} "
                             f"skipped steps, final loss {r.final_loss:.3f}, {r.ms_per_step:.1f} ms/step"))
    console.print(soak.render_table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        meta = soak.metadata(args.device, [sys.executable] + sys.argv, lr=args.lr, steps=args.steps, tiny=args.tiny)
        Path(args.json).write_text(json.dumps(dict(meta=meta, rows=rows), indent=1))
        console.print(f"wrote {args.json}")
    return rows


if __name__ == "__main__":
    main()
