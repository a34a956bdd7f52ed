"""Scan orderings in plain torch ops: how a feature map becomes K sequences, and back.

An ordering is data, not model code: a backbone names it.
- "unidi":   1 route, row-major.
- "bidi":    2 routes, row-major and its reverse (Vim).
- "cross2d": 4 routes, row-major, column-major, and both reversed (VMamba's order).
cross_merge is the adjoint of cross_scan: it maps every route back to row-major order and sums.
"""
from __future__ import annotations

import torch

ROUTES = {"unidi": 1, "bidi": 2, "cross2d": 4}


def cross_scan_reference(x: torch.Tensor, ordering: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, K, C, H*W); "unidi"/"bidi" also take a flat (B, C, L)."""
    flat = x.flatten(2)
    if ordering == "unidi":
        return flat.unsqueeze(1)
    if ordering == "bidi":
        return torch.stack([flat, flat.flip(-1)], dim=1)
    if ordering == "cross2d":
        cols = x.transpose(2, 3).flatten(2)
        return torch.stack([flat, cols, flat.flip(-1), cols.flip(-1)], dim=1)
    raise ValueError(f"cross_scan: ordering={ordering!r}, expected one of {sorted(ROUTES)}")


def cross_merge_reference(y: torch.Tensor, ordering: str, height: int | None = None,
                          width: int | None = None) -> torch.Tensor:
    """(B, K, C, L) -> (B, C, L), row-major; "cross2d" needs height and width."""
    if ordering == "unidi":
        return y[:, 0]
    if ordering == "bidi":
        return y[:, 0] + y[:, 1].flip(-1)
    if ordering == "cross2d":
        if height is None or width is None or height * width != y.shape[-1]:
            raise ValueError(f"cross_merge: ordering 'cross2d' needs height * width == L={y.shape[-1]}, "
                             f"got height={height}, width={width}")
        rows = y[:, 0] + y[:, 2].flip(-1)
        cols = y[:, 1] + y[:, 3].flip(-1)
        b, c = cols.shape[:2]
        return rows + cols.view(b, c, width, height).transpose(2, 3).reshape(b, c, -1)
    raise ValueError(f"cross_merge: ordering={ordering!r}, expected one of {sorted(ROUTES)}")
