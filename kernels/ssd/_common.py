"""Pieces every SSD backend shares: compute dtype, discretisation, group expansion, the output epilogue."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """The state math runs in fp32 whatever the input dtype; fp64 inputs keep fp64 (gradcheck)."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def discretize(dt: torch.Tensor, dt_bias: torch.Tensor | None, dt_softplus: bool,
               dtype: torch.dtype) -> torch.Tensor:
    """(batch, L, heads) step sizes: softplus(dt + dt_bias) or dt + dt_bias, in the compute dtype
    (mamba_ssm: softplus with threshold 20, as F.softplus)."""
    dt = dt.to(dtype)
    if dt_bias is not None:
        dt = dt + dt_bias.to(dtype)
    return F.softplus(dt) if dt_softplus else dt


def per_head(m: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, L, G, N) -> (batch, L, heads, N): head h reads group h // (heads // G)."""
    return m.repeat_interleave(heads // m.shape[2], dim=2)


def epilogue(y: torch.Tensor, x: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None,
             out_dtype: torch.dtype) -> torch.Tensor:
    """y + D x (D per head, or per head and channel), gated by silu(z), cast to the input dtype."""
    if D is not None:
        Dc = D.to(y.dtype)
        y = y + x.to(y.dtype) * (Dc[:, None] if Dc.dim() == 1 else Dc)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(out_dtype)
