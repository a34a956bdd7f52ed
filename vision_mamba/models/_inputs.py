"""The check every backbone runs on its image input, so a wrong input fails with the argument, its
shape and what was expected, not deep inside a convolution or the scan."""
from __future__ import annotations

import torch


def check_image(x: torch.Tensor, in_chans: int, min_size: int, model: str) -> None:
    """x must be (batch >= 1, in_chans, H >= min_size, W >= min_size), floating point."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{model}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[0] == 0 or x.shape[1] != in_chans \
            or x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(f"{model}: x has shape {tuple(x.shape)}, expected (batch >= 1, {in_chans}, H, W) "
                         f"with H, W >= {min_size}")
    if not x.is_floating_point():
        raise ValueError(f"{model}: x has dtype {x.dtype}, expected a floating-point image")
