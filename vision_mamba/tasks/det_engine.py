"""Step-based training and COCO evaluation of the torchvision detectors (tools/train_det.py, eval_det.py).

The recipe is mmdetection's "1x" as the Vim / VMamba / MambaOut papers use it for COCO: AdamW, linear
warm-up over the first steps, the learning rate divided by 10 after epochs 8 and 11 of 12 (timm's
MultiStepLRScheduler, stepped per update).  Each epoch's image order comes from a generator seeded
with (seed, epoch), so `--resume auto` continues at the exact next batch.  Every evaluation (COCOeval:
box, and mask for Mask R-CNN) is followed by a checkpoint (vision_mamba.training.checkpoint: atomic
safetensors + weights_only state).  Logs in --output: train.csv, val.csv, summary.json.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from argparse import Namespace
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from timm.scheduler import MultiStepLRScheduler
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from ..training.checkpoint import find_latest, load_checkpoint, load_model_weights, save_checkpoint
from ..training.logs import CsvLog
from .coco import CocoDetectionDataset, collate, evaluate_detector
from .detection import build_detector

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(device: torch.device, amp: str):
    if amp == "none":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def detector_from_config(cfg: Namespace, num_classes: int, pretrained: Optional[bool] = None) -> torch.nn.Module:
    """The detector a recipe describes; pretrained=False skips the backbone weights (a checkpoint follows)."""
    backbone_kwargs = dict(cfg.model_kwargs or {})
    if cfg.drop_path is not None:
        backbone_kwargs["drop_path_rate"] = cfg.drop_path
    pretrained = cfg.pretrained if pretrained is None else pretrained
    if pretrained and cfg.pretrained_file:
        backbone_kwargs["pretrained_cfg_overlay"] = dict(file=str(cfg.pretrained_file))
    blocks = cfg.pyramid_blocks
    model = build_detector(
        cfg.model, cfg.arch, num_classes, out_indices=cfg.out_indices, fpn_channels=cfg.fpn_channels,
        min_size=tuple(cfg.min_size) if len(cfg.min_size) > 1 else cfg.min_size[0], max_size=cfg.max_size,
        pretrained=pretrained, freeze_backbone=cfg.freeze_backbone,
        pyramid_blocks=blocks[0] if blocks and len(blocks) == 1 else blocks,
        anchor_sizes=cfg.anchor_sizes, box_head_dim=cfg.box_head_dim, mask_head_channels=cfg.mask_head_channels,
        detector_kwargs=cfg.detector_kwargs, **backbone_kwargs)
    if cfg.grad_checkpointing:
        model.backbone.features.set_grad_checkpointing(True)
    return model


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms (1-D parameters) and whatever a backbone lists in
    its no_weight_decay() (Vim's position embedding, class token, A_log, D ...)."""
    skip = set()
    for prefix, module in model.named_modules():
        names = getattr(module, "no_weight_decay", None)
        if callable(names):
            skip |= {f"{prefix}.{n}" if prefix else n for n in names()}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 or name.endswith(".bias") or name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _optimizer(cfg, model):
    groups = param_groups(model, cfg.weight_decay)
    if cfg.opt == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.opt == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    raise ValueError(f"opt={cfg.opt!r}, expected 'adamw' or 'sgd'")


def _scheduler(cfg, optimizer, steps_per_epoch: int) -> MultiStepLRScheduler:
    milestones = [max(1, round(e * steps_per_epoch)) for e in cfg.lr_steps]
    return MultiStepLRScheduler(optimizer, decay_t=milestones, decay_rate=cfg.lr_decay,
                                warmup_t=cfg.warmup_steps, warmup_lr_init=cfg.lr * cfg.warmup_ratio,
                                t_in_epochs=False)


def _datasets(cfg, masks: bool):
    if not cfg.train_ann or not cfg.train_images:
        raise ValueError("--train-ann and --train-images are required (a COCO json and its image folder)")
    train_ds = CocoDetectionDataset(cfg.train_images, cfg.train_ann, masks=masks, hflip=cfg.hflip)
    if cfg.val_ann:
        eval_ds = CocoDetectionDataset(cfg.val_images or cfg.train_images, cfg.val_ann, masks=masks)
        eval_set = f"validation set {cfg.val_ann}"
        if eval_ds.cat_ids != train_ds.cat_ids:
            raise ValueError(f"--val-ann {cfg.val_ann!r} has categories {eval_ds.cat_ids}, the training set "
                             f"{train_ds.cat_ids}")
    else:
        eval_ds = CocoDetectionDataset(cfg.train_images, cfg.train_ann, masks=masks)
        eval_set = f"training set {cfg.train_ann} (no --val-ann)"
    return train_ds, eval_ds, eval_set


def _eval_loader(cfg, dataset):
    return DataLoader(dataset, batch_size=cfg.eval_batch_size or cfg.batch_size, shuffle=False,
                      num_workers=cfg.workers, collate_fn=collate)


def _epoch_loader(cfg, dataset, epoch: int, skip_batches: int):
    """This epoch's batches, in the order a generator seeded with (seed, epoch) gives, from batch
    skip_batches on (a resumed run does not re-read the images it skips)."""
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
    remaining = order[skip_batches * cfg.batch_size:].tolist()
    return DataLoader(Subset(dataset, remaining), batch_size=cfg.batch_size, shuffle=False,
                      num_workers=cfg.workers, collate_fn=collate)


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def train(cfg: Namespace) -> dict:
    """Train as configured (det_cli's parser); returns the run summary (also in output/summary.json)."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    masks = cfg.arch == "mask_rcnn"
    iou_types = ("bbox", "segm") if masks else ("bbox",)
    train_ds, eval_ds, eval_set = _datasets(cfg, masks)
    _seed(cfg.seed)
    model = detector_from_config(cfg, train_ds.num_classes).to(device)
    steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
    total_steps = cfg.max_steps or cfg.epochs * steps_per_epoch
    optimizer = _optimizer(cfg, model)
    scheduler = _scheduler(cfg, optimizer, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    train_log, val_log = CsvLog(out / "train.csv"), CsvLog(out / "val.csv")
    meta_common = {"model": cfg.model, "arch": cfg.arch, "num_classes": train_ds.num_classes,
                   "class_names": train_ds.class_names, "cat_ids": train_ds.cat_ids}

    step = 0
    resume = find_latest(out) if cfg.resume == "auto" else (Path(cfg.resume) if cfg.resume else None)
    if cfg.resume == "auto" and resume is None:
        log.info("--resume auto: no checkpoint under %s, starting fresh", out)
    if resume is not None:
        meta, weights, _, state = load_checkpoint(resume)
        _check_meta(meta, cfg, train_ds.num_classes, str(resume))
        load_model_weights(model, weights, str(resume / "model.safetensors"))
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        step = int(meta["step"])
        for csv_log in (train_log, val_log):
            csv_log.truncate_after(step)
        log.info("resumed from %s at step %d", resume, step)
    _seed(cfg.seed + step)  # augmentation draws differ from the interrupted run's steps already done

    def evaluate() -> dict:
        with torch.no_grad():
            return evaluate_detector(model, _eval_loader(cfg, eval_ds), eval_ds, device, iou_types,
                                     autocast(device, cfg.amp), max_images=cfg.eval_max_images or None)

    def checkpoint(metrics: dict) -> Path:
        state = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}
        saved = {k: v for k, v in metrics.items() if not k.endswith("_summary")}
        return save_checkpoint(out, step, model, state, {**meta_common, "metrics": saved},
                               keep_last=cfg.keep_checkpoints)

    metrics: dict = {}
    saved: Optional[Path] = resume
    bad_in_a_row = 0
    stop = False
    t0 = time.time()
    bar = tqdm(total=total_steps, initial=step, desc="train", dynamic_ncols=True)
    while step < total_steps and not stop:
        epoch, done_in_epoch = divmod(step, steps_per_epoch)
        for images, targets in _epoch_loader(cfg, train_ds, epoch, done_in_epoch):
            model.train()
            images = [img.to(device) for img in images]
            targets = [{k: v.to(device) if torch.is_tensor(v) else v for k, v in t.items()} for t in targets]
            with autocast(device, cfg.amp):
                losses = model(images, targets)
            loss = sum(losses.values())
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                bad_in_a_row += 1
                log.warning("step %d: non-finite loss %s (%d in a row), update skipped", step + 1,
                            {k: v.item() for k, v in losses.items()}, bad_in_a_row)
                if bad_in_a_row >= cfg.nan_patience:
                    saved = checkpoint({"stopped": "non-finite losses"})
                    raise FloatingPointError(f"{bad_in_a_row} non-finite losses in a row at step {step + 1}; "
                                             f"last good weights saved in {saved}")
                continue
            bad_in_a_row = 0
            scaler.scale(loss).backward()
            if cfg.clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            scheduler.step_update(step)
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if step % cfg.log_interval == 0 or step == total_steps:
                train_log.append({"step": step, "epoch": epoch, "loss": loss.item(),
                                  **{k: v.item() for k, v in losses.items()},
                                  "lr": optimizer.param_groups[0]["lr"], "elapsed_s": round(time.time() - t0, 2)})
            end_of_epoch = step % steps_per_epoch == 0
            if (step % cfg.eval_every == 0 if cfg.eval_every else end_of_epoch) or step == total_steps:
                metrics = evaluate()
                val_log.append({"step": step, "epoch": epoch,
                                **{k: v for k, v in metrics.items() if not k.endswith("_summary")}})
                bar.write(f"step {step}: box AP {metrics['bbox_AP']:.3f} AP50 {metrics['bbox_AP50']:.3f}"
                          + (f", mask AP {metrics['segm_AP']:.3f}" if masks else "") + f" ({eval_set})")
                saved = checkpoint(metrics)
                if cfg.target_ap50 and metrics["bbox_AP50"] >= cfg.target_ap50:
                    bar.write(f"box AP50 {metrics['bbox_AP50']:.3f} >= --target-ap50 {cfg.target_ap50}: stopping")
                    stop = True
            if stop or step >= total_steps:
                break
    bar.close()
    if not metrics:  # resumed at the end: report the checkpoint's evaluation again
        metrics = evaluate()
    summary = {"steps": step, "checkpoint": str(saved) if saved else None, "eval_set": eval_set,
               "metrics": {k: v for k, v in metrics.items() if not k.endswith("_summary")},
               "wall_time_s": round(time.time() - t0, 2), "device": str(device),
               "command_config": {k: v for k, v in vars(cfg).items()}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    return summary


def _check_meta(meta: dict, cfg: Namespace, num_classes: Optional[int], source: str) -> None:
    for key, want in (("model", cfg.model), ("arch", cfg.arch), ("num_classes", num_classes)):
        if want is not None and key in meta and meta[key] != want:
            raise ValueError(f"checkpoint {source!r} was trained with {key}={meta[key]!r}, the config says {want!r}")


def evaluate_checkpoint(cfg: Namespace, checkpoint: str) -> dict:
    """COCO metrics of a checkpoint on the recipe's validation set (its training set without --val-ann)."""
    path = Path(checkpoint)
    meta, weights, _, _ = load_checkpoint(path)
    _check_meta(meta, cfg, None, str(path))
    masks = cfg.arch == "mask_rcnn"
    _, eval_ds, eval_set = _datasets(cfg, masks)
    if meta.get("cat_ids") not in (None, eval_ds.cat_ids):
        raise ValueError(f"checkpoint {str(path)!r} was trained on categories {meta['cat_ids']}, the evaluation "
                         f"set has {eval_ds.cat_ids}")
    device = resolve_device(cfg.device)
    model = detector_from_config(cfg, int(meta["num_classes"]), pretrained=False)
    load_model_weights(model, weights, str(path / "model.safetensors"))
    model.to(device)
    metrics = evaluate_detector(model, _eval_loader(cfg, eval_ds), eval_ds, device,
                                ("bbox", "segm") if masks else ("bbox",), autocast(device, cfg.amp),
                                max_images=cfg.eval_max_images or None)
    metrics.update(checkpoint=str(path), step=int(meta["step"]), eval_set=eval_set)
    return metrics


__all__ = ["detector_from_config", "evaluate_checkpoint", "param_groups", "train"]
