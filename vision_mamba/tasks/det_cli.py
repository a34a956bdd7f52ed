"""Command lines of tools/train_det.py and tools/eval_det.py.

Same pattern as classification (vision_mamba.training.cli): a YAML recipe in configs/det/ sets the
defaults, flags override it, unknown keys are an error.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..training.cli import many, parse_with_config, setup_logging


def build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a torchvision Faster / Mask R-CNN on any backbone "
                                "(COCO-format data).", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML recipe (configs/det/...); flags given here override it")
    g = p.add_argument_group("data")
    g.add_argument("--train-images", default=None, help="folder of the training images")
    g.add_argument("--train-ann", default=None, help="COCO annotations (json) of the training images")
    g.add_argument("--val-images", default=None, help="folder of the validation images (default: the training one)")
    g.add_argument("--val-ann", default=None, help="COCO annotations of the validation images "
                   "(default: evaluate on the training set)")
    g.add_argument("--hflip", type=float, default=0.5, help="horizontal-flip probability in training")
    g.add_argument("--workers", type=int, default=2)
    g = p.add_argument_group("model")
    g.add_argument("--model", default="vmamba_tiny_s1l8", help="backbone: any timm / vision_mamba model name")
    g.add_argument("--arch", default="faster_rcnn", choices=("faster_rcnn", "mask_rcnn"))
    g.add_argument("--model-kwargs", type=json.loads, default=None,
                   help="backbone keyword arguments for timm.create_model (a JSON object)")
    g.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=False,
                   help="load the backbone's pretrained weights (with --pretrained-file: that local file)")
    g.add_argument("--pretrained-file", default=None, help="local weights file of the backbone (no download)")
    g.add_argument("--out-indices", type=int, nargs="+", default=None, help="backbone levels (default: strides 4-32)")
    g.add_argument("--pyramid-blocks", type=int, nargs="+", default=None,
                   help="plain backbones (Vim): block(s) feeding the simple pyramid (default: the last)")
    g.add_argument("--fpn-channels", type=int, default=256)
    g.add_argument("--box-head-dim", type=int, default=1024)
    g.add_argument("--mask-head-channels", type=int, default=256)
    g.add_argument("--anchor-sizes", type=float, nargs="+", default=None, help="one per level (default 8 x stride)")
    g.add_argument("--min-size", type=int, nargs="+", default=[800],
                   help="shorter image side (several: one drawn per training image)")
    g.add_argument("--max-size", type=int, default=1333, help="longest image side")
    g.add_argument("--detector-kwargs", type=json.loads, default=None,
                   help="more torchvision FasterRCNN / MaskRCNN arguments (a JSON object)")
    g.add_argument("--drop-path", type=float, default=None, help="backbone stochastic depth rate")
    g.add_argument("--freeze-backbone", action="store_true")
    g.add_argument("--grad-checkpointing", action="store_true")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=12)
    g.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: all epochs)")
    g.add_argument("--batch-size", type=int, default=2, help="images per step")
    g.add_argument("--opt", default="adamw", choices=("adamw", "sgd"))
    g.add_argument("--lr", type=float, default=1e-4)
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    g.add_argument("--lr-steps", **many(float), default=[8, 11],
                   help="epochs (fractions allowed) at which the learning rate is multiplied by --lr-decay")
    g.add_argument("--lr-decay", type=float, default=0.1)
    g.add_argument("--warmup-steps", type=int, default=500, help="linear warm-up from --warmup-ratio x lr")
    g.add_argument("--warmup-ratio", type=float, default=0.001)
    g.add_argument("--clip-grad", type=float, default=None, help="max gradient norm")
    g.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none",
                   help="autocast dtype; fp16 uses a loss scaler")
    g.add_argument("--nan-patience", type=int, default=5,
                   help="stop after this many non-finite losses in a row (each such step is skipped)")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-every", type=int, default=0, help="evaluate (and checkpoint) every N steps "
                   "(0: at the end of every epoch)")
    g.add_argument("--eval-max-images", type=int, default=0, help="evaluate on the first N images only (0: all)")
    g.add_argument("--eval-batch-size", type=int, default=None)
    g = p.add_argument_group("run")
    g.add_argument("--output", default="runs/det", help="run directory (checkpoints, logs)")
    g.add_argument("--resume", default="", help="a checkpoint directory, or 'auto' for the newest intact one "
                   "under --output")
    g.add_argument("--keep-checkpoints", type=int, default=2)
    g.add_argument("--log-interval", type=int, default=20)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    g.add_argument("--target-ap50", type=float, default=0.0,
                   help="stop at the first evaluation whose box AP50 reaches this (0: never)")
    return p


def train_main(argv=None) -> dict:
    import torch

    from .det_engine import train

    cfg = parse_with_config(build_train_parser(), argv)
    setup_logging()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    summary = train(cfg)
    m = summary["metrics"]
    print(f"\n{cfg.arch} on {cfg.model}: {summary['steps']} steps in {summary['wall_time_s'] / 60:.1f} min; "
          f"box AP {m.get('bbox_AP', float('nan')):.3f}, AP50 {m.get('bbox_AP50', float('nan')):.3f} on "
          f"{m.get('images', 0)} images ({summary['eval_set']})"
          + (f"; mask AP {m['segm_AP']:.3f}" if "segm_AP" in m else ""))
    print(f"checkpoint: {summary['checkpoint']}\nlogs:       {Path(cfg.output) / 'train.csv'}, "
          f"{Path(cfg.output) / 'val.csv'}, {Path(cfg.output) / 'summary.json'}")
    return summary


def build_eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="COCO mAP of a detection checkpoint (pycocotools COCOeval).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="the training recipe (model and data settings are read from it)")
    p.add_argument("--checkpoint", required=True, help="a checkpoint directory written by tools/train_det.py")
    p.add_argument("--json", default=None, help="also write the metrics here")
    return p


def eval_main(argv=None) -> dict:
    from .det_engine import evaluate_checkpoint

    args, rest = build_eval_parser().parse_known_args(argv)
    cfg = parse_with_config(build_train_parser(), (["--config", args.config] if args.config else []) + rest)
    setup_logging()
    metrics = evaluate_checkpoint(cfg, args.checkpoint)
    printable = {k: v for k, v in metrics.items() if not k.endswith("_summary")}
    for key in (k for k in metrics if k.endswith("_summary")):
        print(f"{key[:-len('_summary')]}:\n{metrics[key]}")
    print(json.dumps(printable, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=1))
    return metrics
