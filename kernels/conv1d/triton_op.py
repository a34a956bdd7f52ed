"""The Triton `conv1d_silu` as `torch.library` custom ops (forward, backward joined by
register_autograd), so that torch.compile / torch.export trace around the kernels, and as an
autograd.Function over the same launchers for eager calls (less Python per call: kernels/_tracing.py)."""
from typing import List, Optional

import torch
from torch import Tensor

from .._tracing import traced
from . import triton_kernels


@torch.library.custom_op("vision_mamba::conv1d_silu_fwd", mutates_args=())
def conv1d_silu_fwd(x: Tensor, weight: Tensor, bias: Optional[Tensor], reverse: bool) -> Tensor:
    return triton_kernels.forward(x, weight, bias, reverse)


@conv1d_silu_fwd.register_fake
def _fwd_fake(x, weight, bias, reverse):
    if triton_kernels.token_major(x):      # the kernel keeps a token-major input's layout
        return x.new_empty(x.shape[0], x.shape[2], x.shape[1]).transpose(1, 2)
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


@torch.library.custom_op("vision_mamba::conv1d_silu_bwd", mutates_args=())
def conv1d_silu_bwd(dy: Tensor, x: Tensor, weight: Tensor, bias: Optional[Tensor], reverse: bool) -> List[Tensor]:
    dx, dw, db = triton_kernels.backward(dy, x, weight, bias, reverse)
    return [dx, dw] if db is None else [dx, dw, db]


@conv1d_silu_bwd.register_fake
def _bwd_fake(dy, x, weight, bias, reverse):
    out = [torch.empty(x.shape, dtype=x.dtype, device=x.device), weight.new_empty(weight.shape)]
    return out if bias is None else out + [bias.new_empty(bias.shape)]


def _setup_context(ctx, inputs, output):
    x, weight, bias, reverse = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.reverse = reverse


def _backward(ctx, dy):
    x, weight, bias = ctx.saved_tensors
    grads = conv1d_silu_bwd(dy, x, weight, bias, ctx.reverse)
    return grads[0], grads[1], grads[2] if bias is not None else None, None


conv1d_silu_fwd.register_autograd(_backward, setup_context=_setup_context)


class _Conv1dSilu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, reverse):
        ctx.save_for_backward(x, weight, bias)
        ctx.reverse = reverse
        return triton_kernels.forward(x, weight, bias, reverse)

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias = ctx.saved_tensors
        dx, dw, db = triton_kernels.backward(dy, x, weight, bias, ctx.reverse)
        return dx, dw, db, None


def conv1d_silu_triton(x: Tensor, weight: Tensor, bias: Optional[Tensor], reverse: bool) -> Tensor:
    """The custom op when traced, else the autograd.Function (the same kernels)."""
    if traced(x, weight, bias):
        return conv1d_silu_fwd(x, weight, bias, reverse)
    return _Conv1dSilu.apply(x, weight, bias, reverse)
