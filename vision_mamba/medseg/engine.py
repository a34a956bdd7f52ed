"""Step-based training of U-Mamba on a raw MSD / nnU-Net dataset, on MONAI.

Every `val_every` steps the model segments the whole validation volumes with sliding-window inference
and MONAI's DiceMetric scores each foreground class; a checkpoint (vision_mamba.training.checkpoint:
atomic safetensors + weights_only state) follows.  Logs: train.csv, val.csv, preview.png in --output.
"""
from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import DataLoader, Dataset
from monai.inferers import sliding_window_inference
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot
from monai.utils import set_determinism
from tqdm import tqdm

from ..models.umamba import umamba_bot, umamba_enc
from ..training.logs import CsvLog
from ..training.checkpoint import find_latest, load_checkpoint, load_model_weights, save_checkpoint
from .data import read_dataset, split_cases
from .transforms import train_transforms, val_transforms

log = logging.getLogger(__name__)
MODELS = {"umamba_bot": umamba_bot, "umamba_enc": umamba_enc}


def build_model(cfg, in_channels: int, num_classes: int) -> torch.nn.Module:
    if cfg.model not in MODELS:
        raise ValueError(f"model={cfg.model!r}, expected one of {sorted(MODELS)}")
    kwargs = dict(features_per_stage=tuple(cfg.features), strides=None, n_conv_per_stage=cfg.n_conv_per_stage,
                  n_conv_per_stage_decoder=cfg.n_conv_per_stage_decoder, d_state=cfg.d_state,
                  scan_backend=cfg.scan_backend, deep_supervision=True)
    if cfg.model == "umamba_enc":
        kwargs["input_size"] = tuple(cfg.patch_size)
    kwargs.update(cfg.model_kwargs or {})
    return MODELS[cfg.model](cfg.spatial_dims, in_channels, num_classes, **kwargs)


def resolve_device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                        "cpu" if name == "auto" else name)


def autocast(device: torch.device, amp: str):
    if amp == "none":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


class DeepSupervisionLoss(torch.nn.Module):
    """DiceCE on every decoder output (highest resolution first), weighted 1/2^i and normalised to sum
    to 1 as nnU-Net does; each output gets the label downsampled to its size with nearest interpolation
    (label values must stay labels)."""

    def __init__(self, n_outputs: int):
        super().__init__()
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)
        weights = torch.tensor([0.5 ** i for i in range(n_outputs)])
        self.register_buffer("weights", weights / weights.sum(), persistent=False)

    def forward(self, outputs: Sequence[torch.Tensor], label: torch.Tensor) -> torch.Tensor:
        total = outputs[0].new_zeros((), dtype=torch.float32)
        for w, out in zip(self.weights, outputs):
            target = label if out.shape[2:] == label.shape[2:] else \
                F.interpolate(label.float(), size=out.shape[2:], mode="nearest")
            total = total + w * self.loss(out.float(), target)
        return total


def full_resolution(model: torch.nn.Module, slices: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """A predictor for sliding_window_inference: the highest-resolution logits only.  slices: the model is
    2-D and the windows are (H, W, 1) blocks of a volume, one axial slice each."""
    def predict(x: torch.Tensor) -> torch.Tensor:
        out = model(x[..., 0] if slices else x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        return out[..., None] if slices else out
    return predict


def sliding_window_predict(model: torch.nn.Module, image: torch.Tensor, patch_size: Sequence[int],
                           sw_batch_size: int = 2, overlap: float = 0.5, amp: str = "none") -> torch.Tensor:
    """Logits (batch, classes, *spatial) of a whole volume from overlapping patches (Gaussian-weighted
    blending, as nnU-Net), inputs smaller than the patch padded by MONAI.  A 2-D `patch_size` on a
    volume segments it slice by slice (the last, axial axis after the RAS reorientation), as nnU-Net's
    2d configuration does."""
    slices = len(patch_size) == image.dim() - 3
    roi = (*patch_size, 1) if slices else tuple(patch_size)
    with torch.no_grad(), autocast(image.device, amp):
        logits = sliding_window_inference(image, roi, sw_batch_size, full_resolution(model, slices),
                                          overlap=(overlap, overlap, 0.0) if slices else overlap, mode="gaussian")
    return logits.float()


def dice_per_class(pred: torch.Tensor, label: torch.Tensor, num_classes: int) -> np.ndarray:
    """Foreground Dice of each class (classes 1..num_classes-1), averaged over the batch; NaN where no
    label of the batch has the class (MONAI's ignore_empty), so that callers' nanmean skips it rather
    than counting a 0 (DiceMetric's aggregate() would report such a class as 0)."""
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    scores = metric(one_hot(pred.long(), num_classes, dim=1), one_hot(label.long(), num_classes, dim=1))
    return torch.nanmean(scores.float(), dim=0).cpu().numpy()


def _scheduler(cfg, optimizer):
    if cfg.sched == "poly":
        return torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=cfg.max_steps, power=0.9)
    if cfg.sched == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.max_steps, eta_min=cfg.min_lr)
    raise ValueError(f"sched={cfg.sched!r}, expected 'poly' or 'cosine'")


def _optimizer(cfg, model):
    if cfg.opt == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.opt == "sgd":  # nnU-Net's: Nesterov momentum 0.99
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"opt={cfg.opt!r}, expected 'adamw' or 'sgd'")


def _forever(loader):
    while True:
        yield from loader


def train(cfg) -> dict:
    """Train as configured (vision_mamba.medseg.cli's parser); returns a summary dict."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    dataset = read_dataset(cfg.data)
    train_cases, val_cases = split_cases(dataset.cases, cfg.val_fraction, cfg.split_seed,
                                         val_cases=cfg.val_cases)
    if not val_cases:
        log.warning("one case only: validating on the training case")
        val_cases = train_cases
    num_classes = dataset.num_classes
    class_names = [dataset.labels.get(c, str(c)) for c in range(1, num_classes)]
    model = build_model(cfg, len(dataset.channels), num_classes).to(device)
    optimizer = _optimizer(cfg, model)
    scheduler = _scheduler(cfg, optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    loss_fn = DeepSupervisionLoss(len(cfg.features) - 1).to(device)
    train_log, val_log = CsvLog(out / "train.csv"), CsvLog(out / "val.csv")

    step = 0
    resume = find_latest(out) if cfg.resume == "auto" else (Path(cfg.resume) if cfg.resume else None)
    if cfg.resume == "auto" and resume is None:
        log.info("--resume auto: no checkpoint under %s, starting fresh", out)
    if resume is not None:
        meta, weights, _, state = load_checkpoint(resume)
        load_model_weights(model, weights, str(resume / "model.safetensors"))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step = int(meta["step"])
        for csv_log in (train_log, val_log):
            csv_log.truncate_after(step)
        log.info("resumed from %s at step %d", resume, step)
    # MONAI's random transforms draw from numpy / torch generators that set_determinism seeds; a resumed
    # run reseeds with the step so that it does not replay the patches of steps already done
    set_determinism(cfg.seed + step)

    common = dict(spacing=cfg.spacing, normalization=cfg.normalization, ct_window=cfg.ct_window)
    train_ds = Dataset(train_cases, train_transforms(cfg.patch_size, pos_neg=cfg.pos_neg, num_samples=cfg.num_samples,
                                                     flip_prob=cfg.flip_prob,
                                                     intensity_scale_prob=cfg.intensity_scale_prob, **common))
    val_ds = Dataset(val_cases, val_transforms(**common))
    # MONAI's DataLoader collates the list of patches RandCropByPosNegLabeld returns per case
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, num_workers=cfg.workers,
                        drop_last=False, persistent_workers=cfg.workers > 0)
    batches = _forever(loader)

    metrics: dict = {}
    checkpoint: Optional[Path] = resume
    t0 = time.time()
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", dynamic_ncols=True)
    while step < cfg.max_steps:
        model.train()
        batch = next(batches)
        image, label = batch["image"].to(device).as_tensor(), batch["label"].to(device).as_tensor()
        with autocast(device, cfg.amp):
            outputs = model(image)
        loss = loss_fn(outputs, label)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {step + 1}: non-finite loss {loss.item()}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.clip_grad:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % cfg.log_interval == 0 or step == cfg.max_steps:
            train_log.append({"step": step, "loss": loss.item(), "lr": optimizer.param_groups[0]["lr"],
                              "elapsed_s": round(time.time() - t0, 2)})
        if step % cfg.val_every == 0 or step == cfg.max_steps:
            metrics = validate(model, val_ds, num_classes, class_names, cfg, device)
            val_log.append({"step": step, **metrics})
            bar.write(f"step {step}: mean foreground Dice {metrics['mean_dice']:.4f}")
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict()}
            checkpoint = save_checkpoint(out, step, model, state, {
                "metrics": metrics, "num_classes": num_classes, "in_channels": len(dataset.channels),
                "labels": {str(k): v for k, v in dataset.labels.items()}, "model": cfg.model},
                keep_last=cfg.keep_checkpoints)
    bar.close()
    preview = save_preview(model, val_ds[0], cfg, device, out / "preview.png")
    summary = {"steps": step, "checkpoint": str(checkpoint) if checkpoint else None, "metrics": metrics,
               "train_log": str(train_log.path), "val_log": str(val_log.path), "preview": str(preview),
               "wall_time_s": round(time.time() - t0, 2)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def validate(model: torch.nn.Module, val_ds, num_classes: int, class_names: Sequence[str], cfg,
             device: torch.device) -> dict:
    model.eval()
    scores = []
    for case in tqdm(val_ds, desc="val", leave=False, dynamic_ncols=True):
        image = case["image"][None].to(device)
        logits = sliding_window_predict(model, image, cfg.patch_size, cfg.sw_batch_size, cfg.overlap, cfg.amp)
        scores.append(dice_per_class(logits.argmax(1, keepdim=True), case["label"][None].to(device), num_classes))
    per_class = np.nanmean(np.stack(scores), axis=0) if scores else np.full(num_classes - 1, np.nan)
    result = {f"dice_{name}": float(d) for name, d in zip(class_names, per_class)}
    return {"mean_dice": float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan"), **result}


def save_preview(model: torch.nn.Module, case: dict, cfg, device: torch.device, path: Path,
                 n_slices: int = 3) -> Path:
    """Image, label and prediction of the axial slices with the most foreground (last axis)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    image = case["image"][None].to(device)
    pred = sliding_window_predict(model, image, cfg.patch_size, cfg.sw_batch_size, cfg.overlap, cfg.amp)
    pred = pred.argmax(1)[0].cpu().numpy()
    img = case["image"][0].cpu().numpy()
    label = case["label"][0].cpu().numpy()
    fg = (label > 0).reshape(-1, label.shape[-1]).sum(0)
    slices = sorted(np.argsort(-fg, kind="stable")[:n_slices])
    fig, axes = plt.subplots(len(slices), 3, figsize=(9, 3 * len(slices)), squeeze=False)
    vmax = max(int(label.max()), int(pred.max()), 1)
    for row, z in zip(axes, slices):
        for ax, (title, overlay) in zip(row, (("image", None), ("label", label), ("prediction", pred))):
            ax.imshow(img[..., z].T, cmap="gray", origin="lower")
            if overlay is not None:
                ax.imshow(np.ma.masked_equal(overlay[..., z].T, 0), cmap="jet", alpha=0.5, vmin=0, vmax=vmax,
                          origin="lower", interpolation="nearest")
            ax.set_title(f"{title}, slice {z}")
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
