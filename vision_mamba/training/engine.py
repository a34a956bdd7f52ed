"""The classification training loop behind tools/train.py and tools/eval.py.

Built from timm's pieces (create_model, create_optimizer_v2, create_scheduler_v2, Mixup, the loss
functions, ModelEmaV3, accuracy); what is ours is the bookkeeping a long run needs: exact resumption
(step, optimizer, scheduler, scaler, EMA, every RNG, the sampler's position), atomic checkpoints, a
guard against non-finite losses, rank-0 logs and a plot.
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
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import timm
from timm.data import Mixup, resolve_data_config
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, accuracy

import vision_mamba  # noqa: F401  (registers the zoo with timm)

from . import checkpoint as ckpt
from . import distributed
from .data import (ResumableSampler, SeededTransforms, ShardSampler, build_dataset, eval_transform,
                   make_loader, train_transform)
from .logs import RunLog

log = logging.getLogger("vision_mamba.train")

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(RuntimeError):
    """Raised after `nan_patience` consecutive non-finite losses (the last good state is saved)."""


def create_model(cfg: Namespace, num_classes: int) -> nn.Module:
    kwargs = dict(cfg.model_kwargs or {})
    if cfg.drop_path is not None:
        kwargs["drop_path_rate"] = cfg.drop_path
    if cfg.input_size:
        kwargs.setdefault("in_chans", cfg.input_size[0])
    try:
        return timm.create_model(cfg.model, pretrained=False, num_classes=num_classes, **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise ValueError(f"model={cfg.model!r} is not a registered timm model (ours are listed by "
                             f"vision_mamba.list_models())") from e
        raise


def resolve_input(cfg: Namespace, model: nn.Module) -> None:
    """input_size / mean / std / crop_pct / interpolation: the config's, else the model's pretrained_cfg."""
    data_cfg = resolve_data_config({}, model=getattr(model, "module", model))
    cfg.input_size = list(cfg.input_size or data_cfg["input_size"])
    cfg.mean = list(cfg.mean or data_cfg["mean"])
    cfg.std = list(cfg.std or data_cfg["std"])
    cfg.crop_pct = cfg.crop_pct or data_cfg["crop_pct"]
    cfg.interpolation = cfg.interpolation or data_cfg["interpolation"]
    if len(cfg.mean) != cfg.input_size[0] or len(cfg.std) != cfg.input_size[0]:
        raise ValueError(f"mean={cfg.mean} / std={cfg.std}: expected {cfg.input_size[0]} values, one per "
                         f"input channel of input_size={cfg.input_size}")


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "python_gauss": random.getstate()[2],
             "numpy": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2]),
             "numpy_gauss": [int(np_state[3]), float(np_state[4])]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_gauss"][0], state["numpy_gauss"][1]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(model: nn.Module, loader, d: distributed.Dist, amp: Optional[torch.dtype],
             desc: str = "eval") -> dict[str, float]:
    """Top-1 / top-5 / mean loss over every image of the loader's shards, summed over ranks."""
    model.eval()
    loss_sum = top1 = top5 = count = 0.0
    autocast = torch.autocast(d.device.type, dtype=amp) if amp else nullcontext()
    for images, targets in tqdm(loader, desc=desc, disable=not d.main, leave=False, dynamic_ncols=True):
        images, targets = images.to(d.device, non_blocking=True), targets.to(d.device, non_blocking=True)
        with autocast:
            logits = model(images)
        logits = logits.float()
        loss_sum += nn.functional.cross_entropy(logits, targets, reduction="sum").item()
        k = min(5, logits.shape[1])
        a1, a5 = accuracy(logits, targets, topk=(1, k))
        top1 += a1.item() * len(targets) / 100
        top5 += a5.item() * len(targets) / 100
        count += len(targets)
    loss_sum, top1, top5, count = distributed.all_sum([loss_sum, top1, top5, count], d)
    if count == 0:
        raise ValueError("evaluation loader yielded no images")
    return {"loss": loss_sum / count, "top1": 100 * top1 / count, "top5": 100 * top5 / count,
            "images": int(count)}


def _params_checksum(model: nn.Module) -> float:
    """sum(w^2 + w) over every floating-point weight and buffer: equal across replicas in sync."""
    with torch.no_grad():
        return float(sum(v.double().square().sum() + v.double().sum()
                         for v in getattr(model, "module", model).state_dict().values() if v.is_floating_point()))


class Trainer:
    """One training run; `run()` returns the summary dict also written to <output>/summary.json."""

    def __init__(self, cfg: Namespace):
        self.cfg = cfg
        self.d = distributed.init(cfg.device)
        seed_everything(cfg.seed + self.d.rank)
        self.amp = AMP_DTYPES[cfg.amp]
        self.out = Path(cfg.output)
        if self.d.main:
            self.out.mkdir(parents=True, exist_ok=True)

        train_set = build_dataset(cfg.dataset, cfg.data_dir, cfg.train_split)
        val_set = build_dataset(cfg.dataset, cfg.data_dir, cfg.val_split)
        num_classes = cfg.num_classes or _num_classes(train_set)
        self.model = create_model(cfg, num_classes)
        resolve_input(cfg, self.model)
        if cfg.grad_checkpointing:
            self.model.set_grad_checkpointing(True)
        self.model.to(self.d.device)

        self.train_set = SeededTransforms(train_set, train_transform(cfg), cfg.seed)
        val_set.transform = eval_transform(cfg)
        self.sampler = ResumableSampler(self.train_set, self.d.world, self.d.rank, shuffle=True,
                                        seed=cfg.seed, drop_last=True)
        self.mixup = None
        if cfg.mixup > 0 or cfg.cutmix > 0:
            self.mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                               switch_prob=cfg.mixup_switch_prob, label_smoothing=cfg.smoothing,
                               num_classes=num_classes)
        pin = self.d.device.type == "cuda"
        self.train_loader = make_loader(self.train_set, self.sampler, cfg.batch_size, cfg.workers,
                                        drop_last=True, pin_memory=pin, seed=cfg.seed)
        self.val_loader = make_loader(val_set, ShardSampler(len(val_set), self.d.world, self.d.rank),
                                      cfg.eval_batch_size or cfg.batch_size, cfg.workers, drop_last=False,
                                      pin_memory=pin)
        self.steps_per_epoch = len(self.sampler) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch_size={cfg.batch_size} x {self.d.world} process(es) is larger than the "
                             f"training set ({len(self.train_set)} images): no full batch per epoch")

        self.optimizer = create_optimizer_v2(self.model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                             momentum=cfg.momentum, layer_decay=cfg.layer_decay,
                                             **({"betas": tuple(cfg.opt_betas)} if cfg.opt_betas else {}),
                                             **({"eps": cfg.opt_eps} if cfg.opt_eps else {}))
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer, sched=cfg.sched, num_epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs,
            warmup_lr=cfg.warmup_lr, min_lr=cfg.min_lr, step_on_epochs=False,
            updates_per_epoch=self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler(self.d.device.type) if cfg.amp == "fp16" else None
        self.ema = ModelEmaV3(self.model, decay=cfg.ema_decay) if cfg.ema else None
        if cfg.mixup > 0 or cfg.cutmix > 0:
            self.criterion = SoftTargetCrossEntropy()
        elif cfg.smoothing > 0:
            self.criterion = LabelSmoothingCrossEntropy(cfg.smoothing)
        else:
            self.criterion = nn.CrossEntropyLoss()

        self.net = self.model
        if self.d.enabled:
            self.net = DistributedDataParallel(self.model, device_ids=[self.d.local_rank]
                                               if self.d.device.type == "cuda" else None)
        self.step, self.epoch, self.batches_done = 0, 0, 0
        self.nonfinite_total, self.nonfinite_streak = 0, 0
        self.best: dict[str, Any] = {}
        self.log = RunLog(self.out) if self.d.main else None
        self._maybe_resume()

    # ----------------------------------------------------------------- checkpoints
    def _state(self) -> dict[str, Any]:
        rngs = distributed.all_gather_object(_rng_state(), self.d)
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else {}, "rng": rngs}

    def save(self, metrics: Optional[dict] = None) -> Optional[Path]:
        state = self._state()   # every rank takes part in gathering the RNG states
        path = None
        if self.d.main:
            meta = {"epoch": self.epoch, "batches_done": self.batches_done, "model": self.cfg.model,
                    "steps_per_epoch": self.steps_per_epoch, "world_size": self.d.world,
                    "metrics": metrics or {}, "best": self.best, "config": _jsonable(vars(self.cfg))}
            path = ckpt.save_checkpoint(self.out, self.step, self.model, state, meta,
                                        ema=self.ema.module if self.ema else None,
                                        keep_last=self.cfg.keep_checkpoints)
        distributed.barrier(self.d)
        return path

    def _maybe_resume(self) -> None:
        if not self.cfg.resume:
            return
        if self.cfg.resume == "auto":
            path = ckpt.find_latest(self.out)
            if path is None:
                if self.d.main:
                    log.info("--resume auto: no intact checkpoint under %s, starting from scratch", self.out)
                return
        else:
            path = Path(self.cfg.resume)
        meta, weights, ema, state = ckpt.load_checkpoint(path)
        if meta.get("world_size", 1) != self.d.world or meta.get("steps_per_epoch") != self.steps_per_epoch:
            raise ckpt.CheckpointError(
                f"checkpoint {str(path)!r} was written by a run with world_size={meta.get('world_size')} and "
                f"{meta.get('steps_per_epoch')} steps per epoch; this run has world_size={self.d.world} and "
                f"{self.steps_per_epoch}: exact resumption needs the same data split and batch size")
        ckpt.load_model_weights(self.model, weights, str(path / "model.safetensors"))
        if self.ema is not None:
            if ema is None:
                raise ckpt.CheckpointError(f"checkpoint {str(path)!r} has no ema.safetensors but ema is on")
            ckpt.load_model_weights(self.ema.module, ema, str(path / "ema.safetensors"))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"][self.d.rank])
        self.step, self.epoch, self.batches_done = meta["step"], meta["epoch"], meta["batches_done"]
        self.best = meta.get("best", {})
        if self.d.main:
            log.info("resumed from %s: step %d (epoch %d, batch %d)", path, self.step, self.epoch,
                     self.batches_done)
            self.log.truncate_after(self.step)

    # ----------------------------------------------------------------- training
    def _train_step(self, images: torch.Tensor, targets: torch.Tensor) -> float:
        cfg = self.cfg
        if self.mixup is not None:
            images, targets = self.mixup(images, targets)
        autocast = torch.autocast(self.d.device.type, dtype=self.amp) if self.amp else nullcontext()
        with autocast:
            loss = self.criterion(self.net(images), targets)
        # every rank must agree on skipping, or DDP's gradient all-reduce would hang
        finite = distributed.all_sum([float(torch.isfinite(loss).item())], self.d)[0] == self.d.world
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            return float("nan")
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if cfg.clip_grad:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if cfg.clip_grad:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model, step=self.step)
        return loss.item()

    def _guard(self, loss: float) -> None:
        if math.isfinite(loss):
            self.nonfinite_streak = 0
            return
        self.nonfinite_total += 1
        self.nonfinite_streak += 1
        if self.d.main:
            log.warning("step %d: non-finite loss, step skipped (%d in a row, %d in this run)",
                        self.step, self.nonfinite_streak, self.nonfinite_total)
        if self.nonfinite_streak >= self.cfg.nan_patience:
            # the skipped steps changed nothing, so the weights are the last good state
            path = self.save({"stopped": f"{self.nonfinite_streak} non-finite losses in a row"})
            raise NonFiniteLossError(
                f"stopping at step {self.step}: {self.nonfinite_streak} consecutive non-finite losses "
                f"(nan_patience={self.cfg.nan_patience}); last good state saved to {path}. Lower lr, "
                f"enable clip_grad, or use amp=bf16 / none")

    def _eval_all(self) -> dict[str, float]:
        metrics = {f"val_{k}": v for k, v in evaluate(self.net, self.val_loader, self.d, self.amp).items()}
        if self.ema is not None:
            metrics.update({f"ema_{k}": v for k, v in
                            evaluate(self.ema.module, self.val_loader, self.d, self.amp, "eval ema").items()})
        return metrics

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        total = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        started = time.perf_counter()
        window = [started, 0]   # throughput since the last log line: warm-up (JIT, autotune) falls out
        bar = tqdm(total=total, initial=self.step, desc=cfg.model, unit="step", disable=not self.d.main,
                   dynamic_ncols=True)
        metrics: dict[str, Any] = {}
        try:
            while self.step < total:
                self.net.train()
                self.sampler.set_position(self.epoch, self.batches_done * cfg.batch_size)
                self.train_set.set_epoch(self.epoch)
                epoch_start, epoch_losses = time.perf_counter(), []
                for images, targets in self.train_loader:
                    images = images.to(self.d.device, non_blocking=True)
                    targets = targets.to(self.d.device, non_blocking=True)
                    loss = self._train_step(images, targets)
                    self.step += 1
                    self.batches_done += 1
                    self.scheduler.step_update(self.step)
                    self._guard(loss)
                    if math.isfinite(loss):
                        epoch_losses.append(loss)
                    window[1] += len(images) * self.d.world
                    bar.update(1)
                    if self.step % cfg.log_interval == 0 or self.step == total:
                        now = time.perf_counter()
                        rate, window = window[1] / (now - window[0]), [now, 0]
                        bar.set_postfix(epoch=self.epoch, loss=f"{loss:.4f}",
                                        lr=f"{self.optimizer.param_groups[0]['lr']:.2e}", img_s=f"{rate:.0f}")
                        if self.log is not None:
                            self.log.step(self.step, self.epoch, loss, self.optimizer.param_groups[0]["lr"], rate)
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and self.step < total:
                        self.save()
                    if self.step >= total:
                        break
                train_time = time.perf_counter() - epoch_start
                epoch_done = self.batches_done >= self.steps_per_epoch
                metrics = self._eval_all() if (epoch_done or self.step >= total) else {}
                metrics.update({"train_loss": float(np.mean(epoch_losses)) if epoch_losses else float("nan"),
                                "img_per_s": len(epoch_losses) * cfg.batch_size * self.d.world / train_time,
                                "epoch_time_s": time.perf_counter() - epoch_start,
                                "nonfinite_steps": self.nonfinite_total})
                if epoch_done:
                    self.epoch += 1
                    self.batches_done = 0
                key = "ema_top1" if self.ema is not None else "val_top1"
                if key in metrics and metrics[key] >= self.best.get(key, -1):
                    self.best = {key: metrics[key], "step": self.step}
                if self.log is not None:
                    self.log.epoch(self.step, self.epoch, metrics)
                self.save(metrics)
        finally:
            bar.close()
        checksums = distributed.all_gather_object(_params_checksum(self.model), self.d)
        summary = {"model": cfg.model, "steps": self.step, "epochs_completed": self.epoch,
                   "wall_time_s": time.perf_counter() - started, "metrics": metrics, "best": self.best,
                   "checkpoint": str(ckpt.list_checkpoints(self.out)[-1]) if self.d.main else None,
                   "replica_checksums": checksums, "world_size": self.d.world}
        if self.d.main:
            summary["plot"] = str(self.log.plot(title=f"{cfg.model} on {cfg.dataset or cfg.data_dir}"))
            with open(self.out / "summary.json", "w") as f:
                json.dump(_jsonable(summary), f, indent=1)
        if self.d.enabled and len(set(checksums)) != 1:
            raise RuntimeError(f"replicas diverged: parameter checksums per rank {checksums}")
        distributed.shutdown(self.d)
        return summary


def _num_classes(dataset) -> int:
    """torchvision datasets have .classes, timm's folder datasets a reader with class_to_idx."""
    if hasattr(dataset, "classes"):
        return len(dataset.classes)
    reader = getattr(dataset, "reader", None)
    if reader is not None and hasattr(reader, "class_to_idx"):
        return len(reader.class_to_idx)
    raise ValueError("num_classes could not be read from the dataset; set num_classes in the config")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def evaluate_checkpoint(cfg: Namespace, checkpoint: str, ema: bool = False) -> dict[str, Any]:
    """Top-1/top-5 of a checkpoint directory (or a .safetensors file) on cfg's validation split."""
    d = distributed.init(cfg.device)
    path = Path(checkpoint)
    if path.is_dir():
        meta = ckpt.verify_checkpoint(path)
        name = "ema.safetensors" if ema else "model.safetensors"
        if name not in meta["files"]:
            raise ckpt.CheckpointError(f"checkpoint {str(path)!r} has no {name}")
        weights = ckpt.load_weights(path / name)
    else:
        weights = ckpt.load_weights(path)
    val_set = build_dataset(cfg.dataset, cfg.data_dir, cfg.val_split)
    model = create_model(cfg, cfg.num_classes or _num_classes(val_set))
    ckpt.load_model_weights(model, weights, str(path))
    resolve_input(cfg, model)
    model.to(d.device)
    val_set.transform = eval_transform(cfg)
    loader = make_loader(val_set, ShardSampler(len(val_set), d.world, d.rank),
                         cfg.eval_batch_size or cfg.batch_size, cfg.workers, drop_last=False,
                         pin_memory=d.device.type == "cuda")
    metrics = evaluate(model, loader, d, AMP_DTYPES[cfg.amp])
    distributed.shutdown(d)
    return {"model": cfg.model, "checkpoint": str(path), "weights": "ema" if ema else "model", **metrics}
