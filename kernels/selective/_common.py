"""Pieces every selective-scan backend shares: discretisation, group expansion, the output epilogue."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """State math runs in fp32 whatever the input dtype; fp64 inputs keep fp64 so gradcheck is meaningful."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def discretize(delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool,
               dtype: torch.dtype) -> torch.Tensor:
    """dt = softplus(delta + delta_bias) or delta + delta_bias, in the compute dtype (mamba_ssm semantics)."""
    dt = delta.to(dtype)
    if delta_bias is not None:
        dt = dt + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)  # threshold 20, as mamba_ssm's reference and CUDA kernel
    return dt


def as_grouped(x: torch.Tensor) -> torch.Tensor:
    """(batch, N, L) -> (batch, 1, N, L); grouped input unchanged."""
    return x.unsqueeze(1) if x.dim() == 3 else x


def epilogue(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None, z: torch.Tensor | None,
             out_dtype: torch.dtype) -> torch.Tensor:
    """y + D*u, gated by silu(z), cast back to the input dtype."""
    if D is not None:
        y = y + u.to(y.dtype) * D.to(y.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(out_dtype)


def is_dense(x: torch.Tensor) -> bool:
    """x's memory is non-overlapping and dense in some dimension order (a transposed view of a
    contiguous tensor is): torch.empty_like(x) then keeps x's strides."""
    expected = 1
    for size, stride in sorted(zip(x.shape, x.stride()), key=lambda p: p[1]):
        if size != 1 and stride != expected:
            return False
        expected *= size
    return True
