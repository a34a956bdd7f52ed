"""Command lines of tools/train.py and tools/eval.py.

A YAML config (configs/cls/*.yaml) sets the defaults, in the spirit of timm's train.py; flags on the
command line override it.  Keys use the flag names with '_' for '-'.  Unknown config keys are an error,
so a typo in a recipe cannot silently fall back to a default.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import yaml


def many(kind=float, n=None) -> dict:
    """add_argument options for a list of `kind`: n of them, or one or more."""
    return dict(type=kind, nargs=n or "+")


def build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train an image classifier (any timm / vision_mamba model).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML recipe (configs/cls/...); flags given here override it")
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="", help="'' = image folder (data_dir/train, data_dir/val), or a timm "
                   "dataset name such as torch/fashion_mnist")
    g.add_argument("--data-dir", default=None, help="dataset root (torch/fashion_mnist: a cache directory, "
                   "filled from the Debian package)")
    g.add_argument("--train-split", default="train")
    g.add_argument("--val-split", default="val")
    g.add_argument("--num-classes", type=int, default=None, help="default: read from the dataset")
    g.add_argument("--input-size", type=int, nargs=3, default=None, metavar=("C", "H", "W"),
                   help="default: the model's pretrained_cfg")
    g.add_argument("--mean", **many(), default=None)
    g.add_argument("--std", **many(), default=None)
    g.add_argument("--crop-pct", type=float, default=None)
    g.add_argument("--interpolation", default=None)
    g.add_argument("--workers", type=int, default=2)
    g = p.add_argument_group("augmentation")
    g.add_argument("--scale", **many(float, 2), default=[0.08, 1.0], help="RandomResizedCrop scale")
    g.add_argument("--ratio", **many(float, 2), default=[3 / 4, 4 / 3])
    g.add_argument("--hflip", type=float, default=0.5)
    g.add_argument("--color-jitter", type=float, default=0.0)
    g.add_argument("--aa", default="", help="timm auto-augment policy, e.g. rand-m9-mstd0.5-inc1")
    g.add_argument("--reprob", type=float, default=0.0, help="random erasing probability")
    g.add_argument("--remode", default="pixel")
    g.add_argument("--recount", type=int, default=1)
    g.add_argument("--mixup", type=float, default=0.0, help="mixup alpha")
    g.add_argument("--cutmix", type=float, default=0.0, help="cutmix alpha")
    g.add_argument("--mixup-prob", type=float, default=1.0)
    g.add_argument("--mixup-switch-prob", type=float, default=0.5)
    g.add_argument("--smoothing", type=float, default=0.1, help="label smoothing")
    g = p.add_argument_group("model")
    g.add_argument("--model", default="vim_tiny_patch16_224")
    g.add_argument("--model-kwargs", type=json.loads, default=None,
                   help="extra timm.create_model keyword arguments (a JSON object on the command line)")
    g.add_argument("--drop-path", type=float, default=None, help="stochastic depth rate")
    g.add_argument("--grad-checkpointing", action="store_true")
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=300)
    g.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: all epochs)")
    g.add_argument("--batch-size", type=int, default=128, help="per process")
    g.add_argument("--eval-batch-size", type=int, default=None)
    g.add_argument("--opt", default="adamw")
    g.add_argument("--opt-betas", **many(float, 2), default=None)
    g.add_argument("--opt-eps", type=float, default=None)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--layer-decay", type=float, default=None)
    g.add_argument("--sched", default="cosine")
    g.add_argument("--warmup-epochs", type=float, default=5)
    g.add_argument("--warmup-lr", type=float, default=1e-6)
    g.add_argument("--min-lr", type=float, default=1e-5)
    g.add_argument("--clip-grad", type=float, default=None, help="max gradient norm")
    g.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none",
                   help="autocast dtype; fp16 uses a loss scaler")
    g.add_argument("--ema", action=argparse.BooleanOptionalAction, default=False)
    g.add_argument("--ema-decay", type=float, default=0.9999)
    g.add_argument("--nan-patience", type=int, default=5,
                   help="stop (saving the last good state) after this many non-finite losses in a row")
    g = p.add_argument_group("run")
    g.add_argument("--output", default="runs/train", help="run directory (checkpoints, logs, plot)")
    g.add_argument("--resume", default="", help="a checkpoint directory, or 'auto' for the newest intact "
                   "one under --output")
    g.add_argument("--checkpoint-every", type=int, default=0, help="also checkpoint every N steps")
    g.add_argument("--keep-checkpoints", type=int, default=2)
    g.add_argument("--log-interval", type=int, default=20)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0: torch default)")
    g.add_argument("--deterministic", action="store_true", help="torch deterministic algorithms")
    return p


def parse_with_config(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        path = Path(pre.config)
        if not path.is_file():
            parser.error(f"--config {pre.config!r}: no such file")
        with open(path) as f:
            cfg = yaml.safe_load(f) or {}
        if not isinstance(cfg, dict):
            parser.error(f"--config {pre.config!r}: expected a mapping of option: value")
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(k.replace("-", "_") for k in cfg) - known)
        if unknown:
            parser.error(f"--config {pre.config!r}: unknown keys {unknown}")
        parser.set_defaults(**{k.replace("-", "_"): v for k, v in cfg.items()})
    return parser.parse_args(argv)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


def train_main(argv=None) -> dict:
    import torch

    from .engine import Trainer

    cfg = parse_with_config(build_train_parser(), argv)
    setup_logging()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    trainer = Trainer(cfg)
    summary = trainer.run()
    if trainer.d.main:
        m = summary["metrics"]
        print(f"\n{cfg.model}: {summary['steps']} steps in {summary['wall_time_s'] / 60:.1f} min; "
              f"top-1 {m.get('val_top1', float('nan')):.2f}% on {m.get('val_images', 0)} validation images"
              + (f" (EMA {m['ema_top1']:.2f}%)" if "ema_top1" in m else ""))
        print(f"checkpoint: {summary['checkpoint']}\nplot:       {summary['plot']}\n"
              f"logs:       {Path(cfg.output) / 'epochs.csv'}, {Path(cfg.output) / 'summary.json'}")
    return summary


def build_eval_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Evaluate a classifier checkpoint (top-1 / top-5).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="the training recipe (model, data and input settings are read from it)")
    p.add_argument("--checkpoint", required=True, help="a checkpoint directory written by tools/train.py, "
                   "or a .safetensors weights file")
    p.add_argument("--ema", action="store_true", help="evaluate the EMA weights of the checkpoint")
    p.add_argument("--json", default=None, help="also write the metrics here")
    return p


def eval_main(argv=None) -> dict:
    from .engine import evaluate_checkpoint

    eval_parser = build_eval_parser()
    args, rest = eval_parser.parse_known_args(argv)
    train_parser = build_train_parser()
    cfg = parse_with_config(train_parser, (["--config", args.config] if args.config else []) + rest)
    setup_logging()
    metrics = evaluate_checkpoint(cfg, args.checkpoint, ema=args.ema)
    print(json.dumps(metrics, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=1))
    return metrics
