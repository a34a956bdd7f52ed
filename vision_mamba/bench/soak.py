"""Mixed-precision soak: train each family for many steps in bf16 and in fp16 (with a loss scaler) on
random data, and count what went wrong.

    rows = run_soak(["vim_s", "vmamba_t", "twin", "umamba3d"], ["bf16", "fp16"], steps=1000)
    make_console().print(render_table(rows))

Each run: the family's model (default scan backend: Triton on CUDA), AdamW at lr 1e-3 (weight decay
0.05, no gradient clipping, no warm-up: an lr high enough that a fragile half-precision path shows),
torch.autocast in the run's dtype, fp16 through torch.amp.GradScaler.  The data are a fixed pool of
`pool` random batches (inputs ~ N(0, 1), random labels), cycled, so the model can fit them and its
logits grow: the regime where half precision overflows.  Per run it records the non-finite losses,
the optimizer steps the scaler skipped (its scale went down), the final scale, the first and final
loss (mean of the last 20 steps), whether every parameter is still finite, the time per step (after
`warmup` untimed steps) and the peak memory.  Nothing stops a run early: the counts are the result.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ..models import umamba_bot
from .kernels import collect_metadata, make_console  # noqa: F401  (make_console: for tools/soak.py)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Family:
    """One soak subject: how to build it and its data, full size (GPU) and tiny (CPU smoke test)."""
    label: str
    build: Callable[[bool], nn.Module]      # tiny -> model
    input_shape: Callable[[bool], tuple]    # tiny -> (batch, channels, *spatial)
    segmentation: bool = False
    notes: str = ""


def _vim_s(tiny: bool) -> nn.Module:
    if tiny:
        return timm.create_model("vim_small_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=32,
                                 d_state=4, num_classes=10)
    return timm.create_model("vim_small_patch16_224")


def _vmamba_t(tiny: bool) -> nn.Module:
    if tiny:
        return timm.create_model("vmamba_tiny_s1l8", depths=(1, 1, 1, 1), dims=16, num_classes=10)
    return timm.create_model("vmamba_tiny_s1l8")


def _twin(tiny: bool) -> nn.Module:
    if tiny:
        return timm.create_model("vim_small_gcnn_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=32,
                                 num_classes=10)
    return timm.create_model("vim_small_gcnn_patch16_224")


def _umamba3d(tiny: bool) -> nn.Module:
    if tiny:
        return umamba_bot(3, 1, 4, features_per_stage=(8, 16, 32), strides=(1, 2, 2), n_conv_per_stage=1,
                          n_conv_per_stage_decoder=1, d_state=4, deep_supervision=False)
    return umamba_bot(3, 1, 4, deep_supervision=False)


FAMILIES: dict[str, Family] = {
    "vim_s": Family("Vim-S (vim_small_patch16_224)", _vim_s,
                    lambda tiny: (2, 3, 32, 32) if tiny else (16, 3, 224, 224),
                    notes="bs 16 @ 224"),
    "vmamba_t": Family("VMamba-T (vmamba_tiny_s1l8)", _vmamba_t,
                       lambda tiny: (2, 3, 32, 32) if tiny else (32, 3, 224, 224), notes="bs 32 @ 224"),
    "twin": Family("Vim-S twin (vim_small_gcnn_patch16_224)", _twin,
                   lambda tiny: (2, 3, 32, 32) if tiny else (16, 3, 224, 224), notes="bs 16 @ 224"),
    "umamba3d": Family("U-Mamba Bot 3-D (umamba_bot, 4 stages 32-256)", _umamba3d,
                       lambda tiny: (1, 1, 16, 16, 16) if tiny else (2, 1, 64, 64, 64), segmentation=True,
                       notes="bs 2 @ 64^3, 1 channel, 4 classes, voxel-wise CE"),
}


@dataclass
class SoakResult:
    family: str
    dtype: str
    steps: int
    non_finite_losses: int = 0
    skipped_steps: int = 0
    final_scale: Optional[float] = None
    first_loss: float = math.nan
    final_loss: float = math.nan
    params_finite: bool = True
    ms_per_step: float = math.nan
    peak_mem_gib: Optional[float] = None
    first_non_finite_step: Optional[int] = None
    notes: str = ""
    losses_every: list = field(default_factory=list)   # every `log_every`-th loss, for a curve


def _batches(shape: tuple, num_classes: int, segmentation: bool, pool: int, device: torch.device, seed: int):
    """`pool` (input, label) pairs: inputs ~ N(0, 1), one label per image (per voxel for segmentation)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    label_shape = (shape[0], *shape[2:]) if segmentation else (shape[0],)
    return [(torch.randn(shape, generator=g).to(device), torch.randint(0, num_classes, label_shape, generator=g).to(device))
            for _ in range(pool)]


def soak_one(name: str, dtype: str, steps: int, device: str | torch.device = "cuda", *, tiny: bool = False,
             lr: float = 1e-3, pool: int = 4, warmup: int = 10, seed: int = 0, log_every: int = 50) -> SoakResult:
    """Train FAMILIES[name] for `steps` steps under autocast(dtype) (see the module docstring)."""
    if name not in FAMILIES:
        raise ValueError(f"soak_one: family={name!r}, expected one of {sorted(FAMILIES)}")
    if dtype not in DTYPES:
        raise ValueError(f"soak_one: dtype={dtype!r}, expected one of {sorted(DTYPES)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"soak_one: steps={steps!r}, expected an int >= 1")
    device = torch.device(device)
    family = FAMILIES[name]
    torch.manual_seed(seed)
    model = family.build(tiny).to(device).train()
    data = _batches(family.input_shape(tiny), model.num_classes, family.segmentation, pool, device, seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16")
    result = SoakResult(family=name, dtype=dtype, steps=steps, notes=family.notes)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses = []
    for step in range(steps):
        if step == min(warmup, steps - 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start, timed_from = time.perf_counter(), step
        x, y = data[step % pool]
        with torch.autocast(device.type, dtype=DTYPES[dtype]):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        scale_before = scaler.get_scale() if scaler.is_enabled() else None
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        value = loss.item()
        losses.append(value)
        if not math.isfinite(value):
            result.non_finite_losses += 1
            if result.first_non_finite_step is None:
                result.first_non_finite_step = step
        if scale_before is not None and scaler.get_scale() < scale_before:
            result.skipped_steps += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        result.peak_mem_gib = torch.cuda.max_memory_allocated(device) / 2 ** 30
    result.ms_per_step = 1e3 * (time.perf_counter() - start) / max(1, steps - timed_from)
    result.first_loss = losses[0]
    result.final_loss = sum(losses[-20:]) / len(losses[-20:])
    result.final_scale = scaler.get_scale() if scaler.is_enabled() else None
    result.params_finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    result.losses_every = losses[::log_every]
    return result


def run_soak(families: Sequence[str], dtypes: Sequence[str], steps: int, device: str = "cuda", *,
             tiny: bool = False, lr: float = 1e-3, progress: Optional[Callable[[SoakResult], Any]] = None,
             **kwargs) -> list[dict]:
    """soak_one for every (family, dtype); rows as dicts, in order.  progress(result) after each run."""
    for name in families:
        if name not in FAMILIES:
            raise ValueError(f"run_soak: family={name!r}, expected one of {sorted(FAMILIES)}")
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(f"run_soak: dtype={dtype!r}, expected one of {sorted(DTYPES)}")
    rows = []
    for name in families:
        for dtype in dtypes:
            result = soak_one(name, dtype, steps, device, tiny=tiny, lr=lr, **kwargs)
            rows.append(vars(result))
            if progress is not None:
                progress(result)
    return rows


def metadata(device: str, argv: Sequence[str] | None = None, **recipe: Any) -> dict:
    """Versions, device, command and date (as the kernel benchmark records them), plus the recipe."""
    meta = {k: v for k, v in collect_metadata(device, argv).items() if k not in ("timing", "inputs")}
    meta["recipe"] = dict(optimizer="AdamW", weight_decay=0.05, clip=None, data="fixed pool of 4 random batches, "
                          "cycled", fp16="torch.amp.GradScaler defaults", **recipe)
    return meta


def render_table(rows: list[dict], title: str = "Mixed-precision soak"):
    """A rich Table: one line per (family, dtype)."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("family", "dtype", "steps", "non-finite losses", "skipped steps", "final scale", "first loss",
                "final loss (last 20)", "params finite", "ms/step", "peak GiB"):
        table.add_column(col, justify="left" if col in ("family", "dtype") else "right")
    for r in rows:
        table.add_row(r["family"], r["dtype"], str(r["steps"]), str(r["non_finite_losses"]), str(r["skipped_steps"]),
                      "-" if r["final_scale"] is None else f"{r['final_scale']:.0f}", f"{r['first_loss']:.3f}",
                      f"{r['final_loss']:.3f}", "yes" if r["params_finite"] else "NO", f"{r['ms_per_step']:.1f}",
                      "-" if r["peak_mem_gib"] is None else f"{r['peak_mem_gib']:.1f}")
    return table
