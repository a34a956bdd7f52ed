"""Fused Triton scan orderings: x is read once for all K routes, and the K routes are summed back in one pass.

Both kernels walk the row-major positions of one (batch, channel) plane in (BLOCK_H, BLOCK_W) tiles.
The scan loads a tile and its mirror image (the positions L-1-p, what the reversed routes hold at p) and
stores each to two routes; the merge loads the same positions from every route and stores their sum (in
fp32, rounded once).  Every store runs along ascending addresses.  The column-major routes go through a
transposed tile, so that their stores (and loads) run along contiguous memory too.

The two are adjoints, so each one's backward is the other (triton_op.py: torch.library custom ops, so
torch.compile traces around the kernels); it goes through the other op with its autograd, which makes
the backward itself differentiable.  "unidi" and "bidi" are run as a
(1, L) image: only the 2-D "cross2d" needs the height and width.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .reference import ROUTES


@triton.jit
def _route(base_ptr, b, c, k, C, L, K: tl.constexpr):
    # b is int64, so the whole offset is: a (B, K, C, L) tensor may pass 2**31 elements
    return base_ptr + ((b * K + k) * C + c) * L


@triton.jit
def _tile(pid, C, H, W, n_tiles_w, n_tiles, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Batch, channel, and a tile's row-major positions (BLOCK_H, BLOCK_W) and column-major positions
    (laid out transposed: (BLOCK_W, BLOCK_H)), each with its mask."""
    plane = pid // n_tiles
    tile = pid % n_tiles
    h0 = (tile // n_tiles_w) * BLOCK_H
    w0 = (tile % n_tiles_w) * BLOCK_W
    h = h0 + tl.arange(0, BLOCK_H)[:, None]
    w = w0 + tl.arange(0, BLOCK_W)[None, :]
    h_t = h0 + tl.arange(0, BLOCK_H)[None, :]
    w_t = w0 + tl.arange(0, BLOCK_W)[:, None]
    return (plane // C, plane % C, h * W + w, (h < H) & (w < W), w_t * H + h_t, (h_t < H) & (w_t < W))


@triton.jit
def _scan_kernel(x_ptr, y_ptr, C, H, W, n_tiles_w, n_tiles,
                 K: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    b, c, rows, mask, cols, mask_t = _tile(pid, C, H, W, n_tiles_w, n_tiles, BLOCK_H, BLOCK_W)
    L = H * W
    plane = x_ptr + (b * C + c) * L
    x = tl.load(plane + rows, mask=mask)
    tl.store(_route(y_ptr, b, c, 0, C, L, K) + rows, x, mask=mask)
    if K > 1:
        # the reversed routes read the mirrored positions and store ascending: with reversed addresses
        # the stores were element-wise (H200, VMamba-T stage 1 batch 128: 2.43 ms, now 0.30; merge 0.35)
        x_rev = tl.load(plane + (L - 1 - rows), mask=mask)
        tl.store(_route(y_ptr, b, c, K // 2, C, L, K) + rows, x_rev, mask=mask)
        if K == 4:  # route 3 is route 1 reversed: the transposed mirror tile
            tl.store(_route(y_ptr, b, c, 1, C, L, K) + cols, tl.trans(x), mask=mask_t)
            tl.store(_route(y_ptr, b, c, 3, C, L, K) + cols, tl.trans(x_rev), mask=mask_t)


@triton.jit
def _merge_kernel(y_ptr, out_ptr, C, H, W, n_tiles_w, n_tiles,
                  K: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    b, c, rows, mask, cols, mask_t = _tile(pid, C, H, W, n_tiles_w, n_tiles, BLOCK_H, BLOCK_W)
    L = H * W
    acc = tl.load(_route(y_ptr, b, c, 0, C, L, K) + rows, mask=mask, other=0.0).to(tl.float32)
    if K > 1:
        acc += tl.load(_route(y_ptr, b, c, K // 2, C, L, K) + (L - 1 - rows), mask=mask, other=0.0).to(tl.float32)
    if K == 4:
        acc_t = tl.load(_route(y_ptr, b, c, 1, C, L, K) + cols, mask=mask_t, other=0.0).to(tl.float32)
        acc_t += tl.load(_route(y_ptr, b, c, 3, C, L, K) + (L - 1 - cols), mask=mask_t, other=0.0).to(tl.float32)
        acc += tl.trans(acc_t)
    tl.store(out_ptr + (b * C + c) * L + rows, acc.to(out_ptr.dtype.element_ty), mask=mask)


def _launch(kernel, src: torch.Tensor, dst: torch.Tensor, batch: int, channels: int, routes: int,
            height: int, width: int) -> torch.Tensor:
    """One program per (plane, tile).  Tiles are near-square (the transpose of "cross2d" wants that) and
    up to 1024 elements; a (1, L) image gets (1, 1024) tiles."""
    if dst.numel() == 0:
        return dst
    block_h = min(triton.next_power_of_2(height), 32)
    block_w = min(triton.next_power_of_2(width), 1024 // block_h)
    n_tiles_w = triton.cdiv(width, block_w)
    n_tiles = triton.cdiv(height, block_h) * n_tiles_w
    kernel[(batch * channels * n_tiles,)](src, dst, channels, height, width, n_tiles_w, n_tiles,
                                K=routes, BLOCK_H=block_h, BLOCK_W=block_w)
    return dst


def scan_launch(x: torch.Tensor, routes: int, height: int, width: int) -> torch.Tensor:
    """(B, C, ...) with H * W positions -> (B, K, C, H * W): the scan kernel, no autograd."""
    batch, channels = x.shape[:2]
    x = x.contiguous()
    y = x.new_empty(batch, routes, channels, height * width)
    return _launch(_scan_kernel, x, y, batch, channels, routes, height, width)


def merge_launch(y: torch.Tensor, routes: int, height: int, width: int) -> torch.Tensor:
    """(B, K, C, L) -> (B, C, L): the merge kernel, no autograd."""
    batch, _, channels, length = y.shape
    y = y.contiguous()
    out = y.new_empty(batch, channels, length)
    return _launch(_merge_kernel, y, out, batch, channels, routes, height, width)


def _routes(ordering: str, fn: str) -> int:
    if ordering not in ROUTES:
        raise ValueError(f"{fn}: ordering={ordering!r}, expected one of {sorted(ROUTES)}")
    return ROUTES[ordering]


def cross_scan_triton(x: torch.Tensor, ordering: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, K, C, H*W); "unidi"/"bidi" also take a flat (B, C, L)."""
    routes = _routes(ordering, "cross_scan")
    height, width = x.shape[-2:] if ordering == "cross2d" else (1, x.shape[2:].numel())
    from .triton_op import cross_scan_fn   # the ops wrap this module's launchers
    return cross_scan_fn(x, routes, height, width)


def cross_merge_triton(y: torch.Tensor, ordering: str, height: int | None = None,
                       width: int | None = None) -> torch.Tensor:
    """(B, K, C, L) -> (B, C, L), row-major; "cross2d" needs height and width (height * width == L)."""
    routes = _routes(ordering, "cross_merge")
    if ordering != "cross2d":
        height, width = 1, y.shape[-1]
    elif height is None or width is None or height * width != y.shape[-1]:
        raise ValueError(f"cross_merge: ordering 'cross2d' needs height * width == L={y.shape[-1]}, "
                         f"got height={height}, width={width}")
    from .triton_op import cross_merge_fn
    return cross_merge_fn(y, routes, height, width)
