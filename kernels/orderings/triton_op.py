"""The fused scan orderings as `torch.library` custom ops, as the selective scan and the conv1d are:
torch.compile and torch.export trace around the kernels instead of into them (dynamo cannot trace into
them at all under the Triton interpreter).  Eager calls take autograd.Functions over the same launchers
(less Python per call: kernels/_tracing.py); `cross_scan_fn` / `cross_merge_fn` pick."""
import torch
from torch import Tensor

from .._tracing import traced
from . import triton_fused


@torch.library.custom_op("vision_mamba::cross_scan_triton", mutates_args=())
def cross_scan_op(x: Tensor, routes: int, height: int, width: int) -> Tensor:
    return triton_fused.scan_launch(x, routes, height, width)


@cross_scan_op.register_fake
def _scan_fake(x, routes, height, width):
    return x.new_empty(x.shape[0], routes, x.shape[1], height * width)


@torch.library.custom_op("vision_mamba::cross_merge_triton", mutates_args=())
def cross_merge_op(y: Tensor, routes: int, height: int, width: int) -> Tensor:
    return triton_fused.merge_launch(y, routes, height, width)


@cross_merge_op.register_fake
def _merge_fake(y, routes, height, width):
    return y.new_empty(y.shape[0], y.shape[2], y.shape[3])


def _setup(ctx, inputs, output):
    ctx.shape, ctx.geometry = inputs[0].shape, inputs[1:]


def _scan_backward(ctx, dy):
    return cross_merge_op(dy, *ctx.geometry).view(ctx.shape), None, None, None


def _merge_backward(ctx, dout):
    return cross_scan_op(dout, *ctx.geometry), None, None, None


cross_scan_op.register_autograd(_scan_backward, setup_context=_setup)
cross_merge_op.register_autograd(_merge_backward, setup_context=_setup)


class _Ordering(torch.autograd.Function):
    """cross_scan (merge=False) or cross_merge (merge=True); each one's backward is the other."""

    @staticmethod
    def forward(ctx, t, merge, routes, height, width):
        ctx.shape, ctx.merge, ctx.geometry = t.shape, merge, (routes, height, width)
        launch = triton_fused.merge_launch if merge else triton_fused.scan_launch
        return launch(t, routes, height, width)

    @staticmethod
    def backward(ctx, grad):
        return _Ordering.apply(grad, not ctx.merge, *ctx.geometry).view(ctx.shape), None, None, None, None


def cross_scan_fn(x: Tensor, routes: int, height: int, width: int) -> Tensor:
    """The custom op when traced, else the autograd.Function (the same kernel)."""
    return cross_scan_op(x, routes, height, width) if traced(x) else _Ordering.apply(x, False, routes, height, width)


def cross_merge_fn(y: Tensor, routes: int, height: int, width: int) -> Tensor:
    """The custom op when traced, else the autograd.Function (the same kernel)."""
    return cross_merge_op(y, routes, height, width) if traced(y) else _Ordering.apply(y, True, routes, height, width)
