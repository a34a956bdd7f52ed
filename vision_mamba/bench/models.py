"""The zoo table: parameters and FLOPs of every registered model, counted on the meta device.

FLOPs follow the papers' convention (fvcore's, as VMamba and Vim report them): a multiply-add of the
matmuls and convolutions (torch.utils.flop_counter counts it as 2) is 1, plus the selective scans at
9 per state update (vision_mamba.kernels.count_flops, mamba_ssm's count); one image at img_size.  No weights are materialised, so every model counts in
well under a second.
"""
from __future__ import annotations

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..kernels import count_flops
from ..models import list_models

# ImageNet-1k top-1 (%) of the official releases, with where the figure was read
PUBLISHED_TOP1 = {
    "vim_tiny_patch16_224": (76.1, "hustvl/Vim model card (Vim-tiny-midclstok)"),
    "vim_small_patch16_224": (80.5, "hustvl/Vim model card (Vim-small-midclstok)"),
    "vim_base_patch16_224": (81.9, "hustvl/Vim model card (Vim-base-midclstok, EMA)"),
    "vmamba_tiny_s2l5": (82.5, "MzeroMiko/VMamba assets/performance_stage1.md, VMamba-T(0230)"),
    "vmamba_small_s2l15": (83.6, "MzeroMiko/VMamba assets/performance_stage1.md, VMamba-S"),
    "vmamba_base_s2l15": (83.9, "MzeroMiko/VMamba assets/performance_stage1.md, VMamba-B"),
    "mambaout_femto": (78.9, "MambaOut paper (arXiv 2405.07992), ImageNet table"),
    "mambaout_tiny": (82.7, "MambaOut paper (arXiv 2405.07992), ImageNet table"),
    "mambaout_small": (84.1, "MambaOut paper (arXiv 2405.07992), ImageNet table"),
}


def create_at_size(name: str, img_size: int, **kwargs) -> torch.nn.Module:
    """Build `name` for img_size x img_size inputs: with img_size where the model takes it (Vim, ViT,
    Swin: timm resizes the position embedding / windows), else plain (ConvNets, VMamba, MambaOut take
    any size)."""
    try:
        return timm.create_model(name, img_size=img_size, **kwargs)
    except TypeError as exc:
        if "img_size" not in str(exc):
            raise
        return timm.create_model(name, **kwargs)


def count_model(name: str, img_size: int = 224) -> dict:
    """Parameters (with the 1000-class head) and FLOPs of one image at img_size."""
    with torch.device("meta"):
        model = create_at_size(name, img_size, num_classes=1000).eval()
        x = torch.empty(1, 3, img_size, img_size)
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as dense, count_flops() as scan:
        model(x)
    top1, source = PUBLISHED_TOP1.get(name, (None, None))
    macs = dense.get_total_flops() / 2
    return dict(name=name, params=params, dense_gmacs=macs / 1e9, scan_gflops=scan[0] / 1e9,
                gflops=(macs + scan[0]) / 1e9,
                top1=top1, top1_source=source)


def zoo_table(img_size: int = 224, families: list[str] | None = None) -> list[dict]:
    rows = []
    for name, family in list_models():
        if families and family not in families:
            continue
        rows.append(dict(family=family, **count_model(name, img_size)))
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| model | family | params (M) | GFLOPs (of which scan) | published top-1 |",
             "|---|---|---:|---:|---:|"]
    for r in rows:
        top1 = f"{r['top1']:.1f}" if r["top1"] is not None else "—"
        lines.append(f"| `{r['name']}` | {r['family']} | {r['params'] / 1e6:.2f} | "
                     f"{r['gflops']:.2f} ({r['scan_gflops']:.2f}) | {top1} |")
    return "\n".join(lines)
