"""The checks every model runs on its arguments, so a wrong input fails with the argument, its value
or shape and what was expected, not deep inside a convolution or the scan.

They are plain Python on shapes, dtypes and devices: free at run time, and traced away by
torch.compile / torch.export without a graph break.  The one data-dependent check (NaN / Inf) runs
only in debug mode (`vision_mamba.kernels.set_debug(True)` or VISION_MAMBA_DEBUG=1), the switch the
selective scan uses for its own inputs.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from vision_mamba.kernels.selective.api import debug_enabled


def positive_int(model: str, name: str, value: Any, minimum: int = 1) -> int:
    """`value` as an int >= minimum (bools are refused: True is not a channel count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{model}: {name}={value!r}, expected an int >= {minimum}")
    return value


def check_matches(x: torch.Tensor, like: torch.Tensor, model: str, name: str = "x") -> None:
    """x on the device of `like` (a parameter of the model), in its dtype unless autocast casts for
    both, and finite in debug mode."""
    if x.device != like.device:
        raise ValueError(f"{model}: {name} is on {x.device}, expected {like.device} (the device of the "
                         f"model's parameters); move one of them with .to()")
    if x.dtype != like.dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"{model}: {name} has dtype {x.dtype}, expected {like.dtype} (the dtype of the "
                         f"model's parameters); cast it, or run under torch.autocast")
    if debug_enabled() and not torch.isfinite(x).all():
        raise ValueError(f"{model}: {name} (shape {tuple(x.shape)}) contains NaN or Inf (debug mode)")


def check_image(x: torch.Tensor, in_chans: int, min_size: int, model: str, *,
                like: Optional[torch.Tensor] = None,
                patch_grid: Optional[tuple[Sequence[int], Sequence[int]]] = None) -> None:
    """x must be (batch >= 1, in_chans, H >= min_size, W >= min_size), floating point; with `like`,
    on its device and in its dtype (see `check_matches`); with patch_grid=(kernel, stride), every
    pixel must fall in a patch: (size - kernel) % stride == 0 on both axes, as an unpadded patch
    conv would otherwise drop the last rows and columns without a word."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{model}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[0] == 0 or x.shape[1] != in_chans \
            or x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(f"{model}: x has shape {tuple(x.shape)}, expected (batch >= 1, {in_chans}, H, W) "
                         f"with H, W >= {min_size}")
    if not x.is_floating_point():
        raise ValueError(f"{model}: x has dtype {x.dtype}, expected a floating-point image")
    if patch_grid is not None:
        kernel, stride = patch_grid
        if any((s - k) % t for s, k, t in zip(x.shape[2:], kernel, stride)):
            rule = (f"multiples of the patch size {tuple(kernel)}" if tuple(kernel) == tuple(stride) else
                    f"patch {tuple(kernel)} plus a multiple of the stride {tuple(stride)}")
            raise ValueError(f"{model}: x has spatial size {tuple(x.shape[2:])}, expected H, W that are {rule} "
                             f"(the patch conv has no padding; resize or pad the image)")
    if like is not None:
        check_matches(x, like, model)
