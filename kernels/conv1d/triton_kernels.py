"""Triton kernels of `conv1d_silu`: a program owns a (BLOCK_D channels x BLOCK_L steps) tile.

Forward: K shifted loads of the tile (L1/L2 hits after the first), fp32 accumulation, SiLU, one
store.  Backward: the pre-activation is recomputed (only x is saved) to form d(pre) in fp32 with the
per-program partial sums of d(weight) and d(bias) (reduced by the caller); dx is then the forward
kernel without bias or SiLU run on d(pre) in the other time direction.  (A one-pass backward that
recomputed pre at the K windows each input feeds ran slower than PyTorch's on the H200.)
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _src(t, shift, REVERSE: tl.constexpr):
    """The input step that tap `shift` steps away feeds into output step t."""
    if REVERSE:
        return t + shift
    else:
        return t - shift


@triton.jit
def _pre(x_rows, sx_t, w_ptr, bias, offs_d, mask_d, t, L, K: tl.constexpr, REVERSE: tl.constexpr):
    """bias + sum_k w[k] x[src_k(t)] in fp32, (BLOCK_D, BLOCK_L); taps k at distance K - 1 - k."""
    acc = tl.zeros([offs_d.shape[0], t.shape[0]], tl.float32) + bias[:, None]
    for k in tl.static_range(K):
        src = _src(t, K - 1 - k, REVERSE)
        m = mask_d[:, None] & ((src >= 0) & (src < L))[None, :]
        xv = tl.load(x_rows + src[None, :] * sx_t, mask=m, other=0.0).to(tl.float32)
        wk = tl.load(w_ptr + offs_d * K + k, mask=mask_d, other=0.0).to(tl.float32)
        acc += wk[:, None] * xv
    return acc


@triton.jit
def _tile_pre(x_ptr, w_ptr, b_ptr, dim, L, sx_b, sx_d, sx_t, n_dblocks, K: tl.constexpr, BLOCK_D: tl.constexpr,
              BLOCK_L: tl.constexpr, HAS_BIAS: tl.constexpr, REVERSE: tl.constexpr):
    """This program's tile (batch row, channels, their mask, steps, x row pointers) and its pre-activation."""
    pid_l = tl.program_id(0)
    pid = tl.program_id(1)
    b = (pid // n_dblocks).to(tl.int64)
    offs_d = (pid % n_dblocks) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < dim
    t = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    bias = tl.zeros([BLOCK_D], tl.float32)
    if HAS_BIAS:
        bias = tl.load(b_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    x_rows = x_ptr + b * sx_b + offs_d[:, None].to(tl.int64) * sx_d
    return b, offs_d, mask_d, t, x_rows, _pre(x_rows, sx_t, w_ptr, bias, offs_d, mask_d, t, L, K, REVERSE)


@triton.jit
def _fwd_kernel(x_ptr, w_ptr, b_ptr, y_ptr, dim, L, sx_b, sx_d, sx_t, sy_b, sy_d, sy_t, n_dblocks,
                K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, HAS_BIAS: tl.constexpr,
                REVERSE: tl.constexpr, SILU: tl.constexpr):
    """y = silu(conv(x)) (SILU) or the bare conv; the backward's dx is the bare conv of d(pre) with
    the time direction flipped."""
    b, offs_d, mask_d, t, x_rows, y = _tile_pre(x_ptr, w_ptr, b_ptr, dim, L, sx_b, sx_d, sx_t, n_dblocks,
                                                K, BLOCK_D, BLOCK_L, HAS_BIAS, REVERSE)
    if SILU:
        y = y * tl.sigmoid(y)
    m = mask_d[:, None] & (t < L)[None, :]
    y_rows = y_ptr + b * sy_b + offs_d[:, None].to(tl.int64) * sy_d
    tl.store(y_rows + t[None, :] * sy_t, y.to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def _dpre_kernel(x_ptr, w_ptr, b_ptr, dy_ptr, dpre_ptr, dw_ptr, db_ptr, dim, L, sx_b, sx_d, sdy_b, sdy_d, n_dblocks,
                 K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr, HAS_BIAS: tl.constexpr,
                 REVERSE: tl.constexpr):
    """d(pre) = dy * silu'(pre) (pre recomputed from x), stored in fp32, and this tile's partial sums
    of d(weight) and d(bias)."""
    b, offs_d, mask_d, t, x_rows, pre = _tile_pre(x_ptr, w_ptr, b_ptr, dim, L, sx_b, sx_d, 1, n_dblocks,
                                                  K, BLOCK_D, BLOCK_L, HAS_BIAS, REVERSE)
    m = mask_d[:, None] & (t < L)[None, :]
    sig = tl.sigmoid(pre)
    dy = tl.load(dy_ptr + b * sdy_b + offs_d[:, None].to(tl.int64) * sdy_d + t[None, :], mask=m, other=0.0)
    dpre = tl.where(m, dy.to(tl.float32) * sig * (1.0 + pre * (1.0 - sig)), 0.0)
    tl.store(dpre_ptr + (b * dim + offs_d[:, None]) * L + t[None, :], dpre, mask=m)
    part = (tl.program_id(0) * (tl.num_programs(1) // n_dblocks) + b) * dim + offs_d      # (L blocks * batch, dim)
    if HAS_BIAS:
        tl.store(db_ptr + part, tl.sum(dpre, axis=1), mask=mask_d)
    for k in tl.static_range(K):
        src = _src(t, K - 1 - k, REVERSE)
        xm = mask_d[:, None] & ((src >= 0) & (src < L))[None, :]
        xv = tl.load(x_rows + src[None, :], mask=xm, other=0.0).to(tl.float32)
        tl.store(dw_ptr + part * K + k, tl.sum(dpre * xv, axis=1), mask=mask_d)


# (BLOCK_D, BLOCK_L, warps): channel-major tiles run along time; token-major ones (unit channel stride)
# take 64 channels x 32 steps, so that each time step's row is one contiguous 128-byte load / store
BLOCK_D, BLOCK_L, NUM_WARPS = 8, 256, 4
TOKEN_MAJOR_TILE = (64, 32, 4)


def _rows(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


def token_major(x: torch.Tensor) -> bool:
    """x (batch, dim, L) is a transposed view of a (batch, L, dim) layout: unit channel stride."""
    return x.stride(1) == 1 and x.stride(2) != 1


def _conv(x, weight, bias, reverse, silu, out_dtype):
    """y in x's layout: (batch, dim, L) contiguous, or for token-major x a (batch, L, dim) tensor viewed
    as (batch, dim, L)."""
    batch, dim, length = x.shape
    if token_major(x):
        y = torch.empty(batch, length, dim, device=x.device, dtype=out_dtype).transpose(1, 2)
        block_d, block_l, warps = TOKEN_MAJOR_TILE
    else:
        y = torch.empty(batch, dim, length, device=x.device, dtype=out_dtype)
        block_d, block_l, warps = BLOCK_D, BLOCK_L, NUM_WARPS
    n_dblocks = triton.cdiv(dim, block_d)
    _fwd_kernel[(triton.cdiv(length, block_l), batch * n_dblocks)](
        x, weight, bias, y, dim, length, *x.stride(), *y.stride(), n_dblocks,
        K=weight.shape[1], BLOCK_D=block_d, BLOCK_L=block_l, HAS_BIAS=bias is not None, REVERSE=reverse,
        SILU=silu, num_warps=warps)
    return y


def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, reverse: bool) -> torch.Tensor:
    """silu(conv(x)); x channel-major (unit time stride, any other strides) or token-major (unit channel
    stride: read and written in that layout, as Vim's token-major inference path hands it over)."""
    if not token_major(x):
        x = _rows(x)
    return _conv(x, weight.contiguous(), bias, reverse, True, x.dtype)


def backward(dy: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, reverse: bool):
    """(dx, dweight, dbias-or-None); dweight / dbias in the parameters' dtypes.  Two passes: d(pre) in
    fp32, then dx as the conv of d(pre) in the other time direction (x[s] feeds pre[s + K - 1 - k]
    through tap k, so dx[s] = sum_k w[k] dpre[s + K - 1 - k], the reverse conv's form)."""
    x, dy = _rows(x), _rows(dy)
    weight = weight.contiguous()
    batch, dim, length = x.shape
    k = weight.shape[1]
    n_dblocks = triton.cdiv(dim, BLOCK_D)
    n_lblocks = triton.cdiv(length, BLOCK_L)
    f32 = dict(device=x.device, dtype=torch.float32)
    dpre = torch.empty(batch, dim, length, **f32)
    dw = torch.empty(n_lblocks * batch, dim, k, **f32)
    db = torch.empty(n_lblocks * batch, dim, **f32) if bias is not None else None
    _dpre_kernel[(n_lblocks, batch * n_dblocks)](
        x, weight, bias, dy, dpre, dw, db, dim, length, x.stride(0), x.stride(1), dy.stride(0), dy.stride(1),
        n_dblocks, K=k, BLOCK_D=BLOCK_D, BLOCK_L=BLOCK_L, HAS_BIAS=bias is not None, REVERSE=reverse,
        num_warps=NUM_WARPS)
    dx = _conv(dpre, weight, None, not reverse, False, x.dtype)
    return dx, dw.sum(0).to(weight.dtype), None if db is None else db.sum(0).to(bias.dtype)
