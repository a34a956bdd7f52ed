"""The Triton selective scan as two `torch.library` custom ops, so that torch.compile and torch.export
trace around the kernels instead of into them.

    vision_mamba::selective_scan_triton_fwd   -> (y, last_state, checkpoints)
    vision_mamba::selective_scan_triton_bwd   -> [du, ddelta, dA, dB, dC, (dD), (dz), (ddelta_bias)]

Each wraps one half of `triton_fused` (`forward` / `backward`); `register_fake` gives their output
shapes without running a kernel (what compile and export trace with), and `register_autograd` joins
them, so a compiled model keeps the fused backward.  The checkpoints' row count belongs to the kernel
the launcher picks (chunk length, blocked or chunked, stored or not): `triton_fused.checkpoint_rows`
gives it from shapes and strides, for the fake and for a test that it matches the real buffer.

y has the layout of torch.empty_like(u) (a token-major u gives a token-major y) and every other
output is contiguous (the real forward copies where a kernel's layout differs), so the fake outputs'
strides are the real ones: compiled code may rely on them.
"""
# no `from __future__ import annotations`: the schemas below are explicit, but keep the hints real
from typing import List, Optional

import torch
from torch import Tensor

from .._tracing import traced
from . import triton_fused
from ._common import is_dense

_FWD_SCHEMA = ("(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, Tensor? z, Tensor? delta_bias, "
               "bool delta_softplus, bool reverse, str kernel, bool store_checkpoints) -> (Tensor, Tensor, Tensor)")
_BWD_SCHEMA = ("(Tensor? dout, Tensor? dlast, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D, "
               "Tensor? z, Tensor? delta_bias, Tensor checkpoints, bool delta_softplus, bool reverse, str kernel) "
               "-> Tensor[]")


@torch.library.custom_op("vision_mamba::selective_scan_triton_fwd", mutates_args=(), schema=_FWD_SCHEMA)
def selective_scan_triton_fwd(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                              z: Optional[Tensor], delta_bias: Optional[Tensor], delta_softplus: bool,
                              reverse: bool, kernel: str, store_checkpoints: bool):
    y, ckpt = triton_fused.forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=reverse,
                                   kernel=kernel, store_checkpoints=store_checkpoints)
    # outputs may alias neither the inputs nor each other: the last state is a copy of the last row
    return _like_u(y, u), ckpt[:, :, -1].clone(), ckpt.contiguous()


def _like_u(y: Tensor, u: Tensor) -> Tensor:
    """y in the layout of torch.empty_like(u) (u's strides when u is dense, as a token-major view is;
    else contiguous): the blocked kernel writes it that way, the chunked one contiguously."""
    if (y.stride() == u.stride()) if is_dense(u) else y.is_contiguous():
        return y
    return torch.empty_like(u).copy_(y)


@selective_scan_triton_fwd.register_fake
def _fwd_fake(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, kernel, store_checkpoints):
    batch, dim, _ = u.shape
    n = A.shape[1]
    # the real row count (a fresh unbacked size instead left inductor unable to order the buffer's
    # strides: a compiled training step failed)
    rows = triton_fused.checkpoint_rows(u, A, B, C, kernel, store_checkpoints)
    f32 = dict(dtype=torch.float32, device=u.device)
    return torch.empty_like(u), torch.empty(batch, dim, n, **f32), torch.empty(batch, dim, rows, n, **f32)


def _present(*tensors: Optional[Tensor]) -> List[Tensor]:
    return [t for t in tensors if t is not None]


@torch.library.custom_op("vision_mamba::selective_scan_triton_bwd", mutates_args=(), schema=_BWD_SCHEMA)
def selective_scan_triton_bwd(dout: Optional[Tensor], dlast: Optional[Tensor], u: Tensor, delta: Tensor, A: Tensor,
                              B: Tensor, C: Tensor, D: Optional[Tensor], z: Optional[Tensor],
                              delta_bias: Optional[Tensor], checkpoints: Tensor, delta_softplus: bool,
                              reverse: bool, kernel: str) -> List[Tensor]:
    grads = triton_fused.backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, checkpoints, delta_softplus,
                                  reverse=reverse, kernel=kernel)
    # the gradients of the absent optional inputs (None) are left out: a Tensor[] holds no None
    return [g.contiguous() for g in _present(*grads)]


@selective_scan_triton_bwd.register_fake
def _bwd_fake(dout, dlast, u, delta, A, B, C, D, z, delta_bias, checkpoints, delta_softplus, reverse, kernel):
    return [t.new_empty(t.shape) for t in _present(u, delta, A, B, C, D, z, delta_bias)]


def _setup_context(ctx, inputs, output):
    u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, kernel, store_checkpoints = inputs
    ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, output[2])
    ctx.options = (delta_softplus, reverse, kernel)
    # the wrapper below stores them whenever an input needs a gradient; a direct call may not
    ctx.no_checkpoints = not store_checkpoints


def _backward(ctx, dy, dlast, _dckpt):
    if ctx.no_checkpoints:
        raise RuntimeError("selective_scan_triton_fwd ran with store_checkpoints=False: there is no backward "
                           "through it; call it with store_checkpoints=True where gradients are needed")
    u, delta, A, B, C, D, z, delta_bias, ckpt = ctx.saved_tensors
    grads = iter(selective_scan_triton_bwd(dy, dlast, u, delta, A, B, C, D, z, delta_bias, ckpt, *ctx.options))
    # back to one gradient per forward input: None for an absent tensor and for the four options
    return (*(next(grads) if t is not None else None for t in (u, delta, A, B, C, D, z, delta_bias)),
            None, None, None, None)


selective_scan_triton_fwd.register_autograd(_backward, setup_context=_setup_context)


def selective_scan_triton_op(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                             return_last_state=False, *, reverse=False, kernel="auto"):
    """The `triton` backend (same arguments and results as `triton_fused.selective_scan_triton`): through
    the custom ops when traced, else through `triton_fused`'s autograd.Function, which runs the same
    kernels with less Python per call (kernels/_tracing.py).  The checkpoints are stored only where
    autograd will need them."""
    if not traced(u, delta, A, B, C, D, z, delta_bias):
        return triton_fused.selective_scan_triton(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                                  return_last_state, reverse=reverse, kernel=kernel)
    store = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias))
    y, last, _ = selective_scan_triton_fwd(u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus),
                                           bool(reverse), kernel, store)
    return (y, last) if return_last_state else y
