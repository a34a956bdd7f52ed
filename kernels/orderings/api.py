"""`cross_scan` / `cross_merge`: one entry point per direction, argument checks, backend dispatch."""
from __future__ import annotations

import os
from typing import Callable

import torch

from .reference import ROUTES, cross_merge_reference, cross_scan_reference

ORDERINGS = ROUTES  # the same dict under the name a caller looks for: ordering -> number of routes K
_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_TRITON_FLOAT = (torch.float16, torch.bfloat16, torch.float32)


def _triton_backend() -> tuple[Callable, Callable]:
    from .triton_fused import cross_merge_triton, cross_scan_triton  # imports triton: only when asked for
    return cross_scan_triton, cross_merge_triton


BACKENDS: dict[str, Callable[[], tuple[Callable, Callable]]] = {
    "reference": lambda: (cross_scan_reference, cross_merge_reference),
    "triton": _triton_backend,
}


def _describe(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def _resolve_backend(fn: str, backend: str, t) -> str:
    """'auto': triton for CUDA tensors of a dtype it takes, reference otherwise."""
    if backend == "auto":
        fits_triton = isinstance(t, torch.Tensor) and t.device.type == "cuda" and t.dtype in _TRITON_FLOAT
        return "triton" if fits_triton else "reference"
    if backend not in BACKENDS:
        raise ValueError(f"{fn}: backend={backend!r}, expected 'auto' or one of {sorted(BACKENDS)}")
    return backend


def _check_common(fn: str, name: str, t, ordering, backend: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{fn}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if ordering not in ROUTES:
        raise ValueError(f"{fn}: ordering={ordering!r}, expected one of {sorted(ROUTES)}")
    if t.dtype not in _FLOAT:
        raise ValueError(f"{fn}: {name} has dtype {t.dtype}, expected one of float16, bfloat16, float32, float64")
    if backend == "triton":
        if t.dtype not in _TRITON_FLOAT:
            raise ValueError(f"{fn}: {name} has dtype {t.dtype}: backend 'triton' takes float16/bfloat16/"
                             f"float32; use backend='reference' for float64")
        if t.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(f"{fn}: backend 'triton' needs CUDA tensors ({name} of shape {_describe(t)} is on "
                             f"{t.device}); use backend='reference' or set TRITON_INTERPRET=1")


def cross_scan(x: torch.Tensor, ordering: str, *, backend: str = "auto") -> torch.Tensor:
    """A feature map as the K sequences of `ordering`: (B, C, H, W) -> (B, K, C, H*W).

    ordering: "unidi" (K=1, row-major), "bidi" (K=2, row-major and reversed; Vim) or "cross2d" (K=4,
    row-major, column-major, reversed row-major, reversed column-major; VMamba).  "unidi" and "bidi"
    also take a flat (B, C, L).  backend: 'auto' (triton on CUDA, reference elsewhere), 'reference'
    or 'triton'.  Differentiable; its adjoint is `cross_merge`.
    """
    fn = "cross_scan"
    name = _resolve_backend(fn, backend, x)
    _check_common(fn, "x", x, ordering, name)
    if ordering == "cross2d" and x.dim() != 4:
        raise ValueError(f"{fn}: x has shape {_describe(x)}, expected (batch, channels, height, width) "
                         f"for ordering 'cross2d'")
    if x.dim() not in (3, 4):
        raise ValueError(f"{fn}: x has shape {_describe(x)}, expected (batch, channels, height, width) "
                         f"or (batch, channels, L) for ordering {ordering!r}")
    return BACKENDS[name]()[0](x, ordering)


def cross_merge(y: torch.Tensor, ordering: str, height: int | None = None, width: int | None = None, *,
                backend: str = "auto") -> torch.Tensor:
    """The K sequences of `ordering` summed back in row-major order: (B, K, C, L) -> (B, C, L).

    The adjoint of `cross_scan` (so also its backward).  "cross2d" needs height and width with
    height * width == L; the other orderings take them optionally (then checked the same way).
    backend as for `cross_scan`.
    """
    fn = "cross_merge"
    name = _resolve_backend(fn, backend, y)
    _check_common(fn, "y", y, ordering, name)
    routes = ROUTES[ordering]
    if y.dim() != 4 or y.shape[1] != routes:
        raise ValueError(f"{fn}: y has shape {_describe(y)}, expected (batch, K={routes}, channels, L) "
                         f"for ordering {ordering!r}")
    length = y.shape[-1]
    given = (height is not None) + (width is not None)
    if given == 1 or (given == 0 and ordering == "cross2d"):
        raise ValueError(f"{fn}: got height={height}, width={width}, expected both (height * width == L={length})"
                         + (" for ordering 'cross2d'" if ordering == "cross2d" else " or neither"))
    if given == 2 and (height < 1 or width < 1 or height * width != length):
        raise ValueError(f"{fn}: y has shape {_describe(y)} but height={height}, width={width}: "
                         f"expected positive sizes with height * width == L={length}")
    return BACKENDS[name]()[1](y, ordering, height, width)
