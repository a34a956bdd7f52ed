"""`conv1d_silu`: silu(depthwise conv1d(x)) over time, causal (or anti-causal with `reverse=True`).

    y[b, d, t] = silu(bias[d] + sum_k weight[d, k] * x[b, d, t - (K - 1) + k])     # causal
    y[b, d, t] = silu(bias[d] + sum_k weight[d, k] * x[b, d, t + (K - 1) - k])     # reverse=True

The causal form is nn.Conv1d(groups=dim, padding=K - 1) keeping the first L outputs, as in Mamba;
reverse=True equals that conv on the time-reversed sequence, reversed back (Vim's backward
direction), without flipping anything.  x is read through its batch/channel strides (unit time
stride), so a channel slice of the in-projection's output needs no copy.

Backends: 'torch' (F.conv1d + SiLU: what nn.Conv1d runs) and 'triton' (one fused kernel each way;
PyTorch's depthwise conv1d runs far below memory bandwidth on the H100/H200, see docs/benchmarks.md).
'auto' picks triton for CUDA tensors.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F


def conv1d_silu_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                          reverse: bool = False) -> torch.Tensor:
    """The definition through F.conv1d (x: (batch, dim, L); weight: (dim, K); bias: (dim,) or None)."""
    dim, k = weight.shape
    pad = k - 1
    w = weight.flip(-1) if reverse else weight
    y = F.conv1d(x, w.unsqueeze(1).to(x.dtype), None if bias is None else bias.to(x.dtype), padding=pad, groups=dim)
    y = y[..., pad:] if reverse else y[..., :x.shape[-1]]
    return F.silu(y)


def _check(x, weight, bias, backend):
    def fail(msg):
        raise ValueError(f"conv1d_silu: {msg}")
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or 0 in x.shape:
        fail(f"x must be a (batch, dim, L) tensor with every size > 0, got "
             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.shape[0] != x.shape[1]:
        fail(f"weight must have shape (dim={x.shape[1]}, K), got "
             f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}")
    if bias is not None and tuple(bias.shape) != (x.shape[1],):
        fail(f"bias has shape {tuple(bias.shape)}, expected (dim={x.shape[1]},)")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.device != x.device:
            fail(f"{name} is on {t.device}, expected {x.device} (the device of x)")
    if backend == "triton":
        if x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            fail(f"backend 'triton' needs CUDA tensors (x is on {x.device}); use backend='torch'")
        if x.dtype == torch.float64:
            fail("x has dtype float64: backend 'triton' takes float16/bfloat16/float32; use backend='torch'")


def conv1d_silu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, reverse: bool = False,
                *, backend: str = "auto") -> torch.Tensor:
    """silu(depthwise conv1d(x)) with K taps; see the module docstring.  Returns (batch, dim, L) in x's
    dtype, contiguous.  backend: 'auto' (triton on CUDA), 'torch' or 'triton'."""
    if backend == "auto":
        backend = "triton" if isinstance(x, torch.Tensor) and x.is_cuda and x.dtype != torch.float64 else "torch"
    if backend not in ("torch", "triton"):
        raise ValueError(f"conv1d_silu: backend={backend!r}, expected 'auto', 'torch' or 'triton'")
    _check(x, weight, bias, backend)
    if backend == "torch":
        return conv1d_silu_reference(x, weight, bias, reverse)
    from .triton_op import conv1d_silu_triton
    return conv1d_silu_triton(x, weight, bias, bool(reverse))
