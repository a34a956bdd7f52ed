"""Command lines of tools/train_medseg.py and tools/infer_medseg.py.

A YAML recipe (configs/medseg/*.yaml) sets the defaults and flags override it, exactly as the
classification tools (vision_mamba.training.cli.parse_with_config: unknown keys are an error)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..training.cli import many, parse_with_config, setup_logging


def build_train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train U-Mamba on an MSD / nnU-Net v2 raw dataset (MONAI).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", help="YAML recipe (configs/medseg/...); flags given here override it")
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, help="dataset directory (dataset.json, imagesTr/, labelsTr/)")
    g.add_argument("--val-fraction", type=float, default=0.2)
    g.add_argument("--split-seed", type=int, default=0)
    g.add_argument("--val-cases", **many(str), default=None, help="validate on these cases (label file names "
                   "without .nii.gz) instead of a random --val-fraction")
    g.add_argument("--spacing", **many(), default=None, help="resample to this voxel spacing (mm); "
                   "none: keep each volume's own grid")
    g.add_argument("--normalization", choices=("mr", "ct"), default="mr")
    g.add_argument("--ct-window", **many(float, 2), default=[-1000.0, 1000.0], help="CT clipping window (HU)")
    g.add_argument("--patch-size", **many(int), default=[64, 64, 64])
    g.add_argument("--pos-neg", **many(float, 2), default=[2.0, 1.0], help="foreground : background patch ratio")
    g.add_argument("--num-samples", type=int, default=2, help="patches per loaded case")
    g.add_argument("--flip-prob", type=float, default=0.5)
    g.add_argument("--intensity-scale-prob", type=float, default=0.15)
    g.add_argument("--workers", type=int, default=2)
    g = p.add_argument_group("model")
    g.add_argument("--model", choices=("umamba_bot", "umamba_enc"), default="umamba_bot")
    g.add_argument("--spatial-dims", type=int, choices=(2, 3), default=3,
                   help="3: patches of the volumes; 2: axial slices (2-D network, --patch-size H W)")
    g.add_argument("--features", **many(int), default=[32, 64, 128, 256], help="channels per encoder stage")
    g.add_argument("--n-conv-per-stage", **many(int), default=[1], help="one value, or one per stage")
    g.add_argument("--n-conv-per-stage-decoder", **many(int), default=[1], help="one value, or one per decoder stage")
    g.add_argument("--d-state", type=int, default=16)
    g.add_argument("--scan-backend", default="auto")
    g.add_argument("--model-kwargs", type=json.loads, default=None, help="more UMambaBot / UMambaEnc "
                   "arguments (a JSON object on the command line)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--max-steps", type=int, default=1000)
    g.add_argument("--batch-size", type=int, default=2, help="cases per batch (times --num-samples patches)")
    g.add_argument("--opt", choices=("adamw", "sgd"), default="adamw")
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--weight-decay", type=float, default=1e-5)
    g.add_argument("--momentum", type=float, default=0.99)
    g.add_argument("--sched", choices=("poly", "cosine"), default="poly")
    g.add_argument("--min-lr", type=float, default=0.0, help="cosine only")
    g.add_argument("--clip-grad", type=float, default=12.0, help="max gradient norm (0: off)")
    g.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none",
                   help="autocast dtype; fp16 uses a GradScaler")
    g = p.add_argument_group("validation and inference")
    g.add_argument("--val-every", type=int, default=250, help="validate and checkpoint every N steps")
    g.add_argument("--sw-batch-size", type=int, default=2)
    g.add_argument("--overlap", type=float, default=0.5)
    g = p.add_argument_group("run")
    g.add_argument("--output", default="runs/medseg", help="run directory (checkpoints, CSV logs, preview)")
    g.add_argument("--resume", default="", help="a checkpoint directory, or 'auto' for the newest intact "
                   "one under --output")
    g.add_argument("--keep-checkpoints", type=int, default=2)
    g.add_argument("--log-interval", type=int, default=10)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    g.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    return p


def _scalar_or_list(values):
    return values[0] if isinstance(values, list) and len(values) == 1 else values


def parse_train_args(argv=None) -> argparse.Namespace:
    parser = build_train_parser()
    cfg = parse_with_config(parser, argv)
    cfg.n_conv_per_stage = _scalar_or_list(cfg.n_conv_per_stage)
    cfg.n_conv_per_stage_decoder = _scalar_or_list(cfg.n_conv_per_stage_decoder)
    if len(cfg.patch_size) != cfg.spatial_dims:
        parser.error(f"--patch-size {cfg.patch_size}: expected {cfg.spatial_dims} values")
    if cfg.spacing is not None and len(cfg.spacing) != 3:
        parser.error(f"--spacing {cfg.spacing}: expected 3 values (the volumes' voxel size, also for 2-D)")
    return cfg


def train_main(argv=None) -> dict:
    import torch

    from .engine import train

    cfg = parse_train_args(argv)
    if cfg.data is None:
        build_train_parser().error("--data is required (or `data:` in the config)")
    setup_logging()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    summary = train(cfg)
    print(f"\n{cfg.model}: {summary['steps']} steps; mean foreground Dice "
          f"{summary['metrics'].get('mean_dice', float('nan')):.4f}\ncheckpoint: {summary['checkpoint']}\n"
          f"logs:       {summary['train_log']}, {summary['val_log']}\npreview:    {summary['preview']}")
    return summary


def build_infer_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Segment NIfTI volumes with a trained U-Mamba checkpoint.")
    p.add_argument("--config", help="the training recipe (model, patch, spacing, normalisation)")
    p.add_argument("--checkpoint", required=True, help="a checkpoint directory written by tools/train_medseg.py")
    p.add_argument("--input", required=True, help="a .nii / .nii.gz file, or a folder of them")
    p.add_argument("--output", required=True, help="folder for the predictions (<name>.nii.gz)")
    p.add_argument("--label", default=None, help="ground truth of a single --input: report per-class Dice")
    p.add_argument("--json", default=None, help="also write the results here")
    return p


def infer_main(argv=None) -> dict:
    import torch

    from ..training.checkpoint import load_checkpoint, load_model_weights
    from .engine import build_model, resolve_device
    from .infer import infer_paths, list_inputs

    infer_parser = build_infer_parser()
    args, rest = infer_parser.parse_known_args(argv)
    cfg = parse_train_args((["--config", args.config] if args.config else []) + rest)
    setup_logging()
    inputs = list_inputs(args.input)
    if args.label is not None and len(inputs) != 1:
        infer_parser.error("--label needs a single --input file")
    meta, weights, _, _ = load_checkpoint(args.checkpoint)
    labels = {int(k): v for k, v in meta["labels"].items()}
    cfg.model = meta.get("model", cfg.model)
    model = build_model(cfg, meta["in_channels"], meta["num_classes"])
    load_model_weights(model, weights, str(Path(args.checkpoint) / "model.safetensors"))
    model.to(resolve_device(cfg.device))
    with torch.no_grad():
        results = infer_paths(model, inputs, args.output, cfg, meta["num_classes"],
                              [labels.get(c, str(c)) for c in range(1, meta["num_classes"])], args.label)
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results
