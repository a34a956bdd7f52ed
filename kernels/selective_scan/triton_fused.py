"""Fused Triton selective scan, forward and backward.

One program owns `BLOCK_D` channels of one batch row, all N states of each, and walks the sequence in
chunks of `BLOCK_L` steps.  Inside a chunk the recurrence h_t = a_t h_{t-1} + x_t is an associative
scan over (a, x) pairs held in registers; the chunk's entering state carries it across chunks.

Forward writes y and the state entering every chunk (batch, dim, n_chunks, N) in fp32: nothing of
size (batch, dim, L, N) is ever stored.  Backward walks the chunks in reverse: it recomputes the
chunk's states from its checkpoint, runs the adjoint recurrence g_t = C_t dy_t + a_{t+1} g_{t+1} as a
reverse scan, and forms every gradient from (h_t, g_t) in registers.  The per-(batch, channel-block)
partial sums of dB, dC, dA, dD and d(delta_bias) are written without atomics and summed by torch,
so the backward is deterministic.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ._common import as_grouped


@triton.jit
def _first_order(a1, x1, a2, x2):
    # compose h -> a1 h + x1 then h -> a2 h + x2
    return a1 * a2, a2 * x1 + x2


@triton.jit
def _softplus(x):
    # log1p without libdevice: log(w) * e / (w - 1) is exact to rounding where 1 + e rounds (Kahan)
    e = tl.exp(tl.minimum(x, 20.0))
    w = 1.0 + e
    log1p = tl.where(w == 1.0, e, tl.log(w) * e / (w - 1.0))
    return tl.where(x > 20.0, x, log1p)


@triton.jit
def _load_dt(delta_ptr, bias, offs, mask, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """dt tile in fp32; 0 outside the sequence so that padded steps decay by 1 and add nothing."""
    raw = tl.load(delta_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        raw = raw + bias[:, None]
    dt = raw
    if SOFTPLUS:
        dt = _softplus(raw)
    return tl.where(mask, dt, 0.0), raw


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    out_ptr, ckpt_ptr, last_ptr,
    dim, L, n_dblocks, n_chunks, d_per_group_B, d_per_group_C, G_B, G_C,
    N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
):
    pid = tl.program_id(0)
    b = pid // n_dblocks
    d0 = (pid % n_dblocks) * BLOCK_D
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N)
    offs_t = tl.arange(0, BLOCK_L)
    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :]).to(tl.float32)          # (D, N)
    bias = tl.zeros([BLOCK_D], tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d).to(tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d).to(tl.float32)
    row = (b * dim + offs_d)[:, None] * L                                              # (D, 1)
    B_row = B_ptr + ((b * G_B + d0 // d_per_group_B) * N + offs_n)[None, :] * L         # (1, N)
    C_row = C_ptr + ((b * G_C + d0 // d_per_group_C) * N + offs_n)[None, :] * L
    ckpt_row = ckpt_ptr + ((b * dim + offs_d)[:, None] * n_chunks) * N + offs_n[None, :]  # (D, N)
    h = tl.zeros([BLOCK_D, N], tl.float32)
    for c in range(n_chunks):
        tl.store(ckpt_row + c * N, h)
        t = c * BLOCK_L + offs_t
        mask_t = t < L
        mask = mask_t[None, :] & (offs_d[:, None] < dim)
        offs = row + t[None, :]
        dt, _ = _load_dt(delta_ptr, bias, offs, mask, HAS_BIAS, SOFTPLUS)
        u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        Bt = tl.load(B_row + t[:, None], mask=mask_t[:, None], other=0.0).to(tl.float32)  # (T, N)
        Ct = tl.load(C_row + t[:, None], mask=mask_t[:, None], other=0.0).to(tl.float32)
        decay = tl.exp(dt[:, :, None] * A[:, None, :])                                     # (D, T, N)
        x = (dt * u)[:, :, None] * Bt[None, :, :]
        cum, local = tl.associative_scan((decay, x), 1, _first_order)
        hs = local + cum * h[:, None, :]
        y = tl.sum(hs * Ct[None, :, :], axis=2)                                            # (D, T)
        if HAS_D:
            y += u * Dv[:, None]
        if HAS_Z:
            zt = tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            y = y * zt * tl.sigmoid(zt)
        tl.store(out_ptr + offs, y.to(out_ptr.dtype.element_ty), mask=mask)
        # padded steps keep the state, so the chunk's last row is the state after its last real step
        h = tl.sum(tl.where(offs_t[None, :, None] == BLOCK_L - 1, hs, 0.0), axis=1)
    tl.store(last_ptr + (b * dim + offs_d)[:, None] * N + offs_n[None, :], h)


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, dout_ptr, dlast_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr,
    dim, L, n_dblocks, n_chunks, d_per_group_B, d_per_group_C, G_B, G_C,
    N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_DLAST: tl.constexpr,
):
    pid = tl.program_id(0)
    b = pid // n_dblocks
    blk = pid % n_dblocks
    d0 = blk * BLOCK_D
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N)
    offs_t = tl.arange(0, BLOCK_L)
    A = tl.load(A_ptr + offs_d[:, None] * N + offs_n[None, :]).to(tl.float32)
    bias = tl.zeros([BLOCK_D], tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d).to(tl.float32)
    Dv = tl.zeros([BLOCK_D], tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d).to(tl.float32)
    row = (b * dim + offs_d)[:, None] * L
    B_row = B_ptr + ((b * G_B + d0 // d_per_group_B) * N + offs_n)[None, :] * L
    C_row = C_ptr + ((b * G_C + d0 // d_per_group_C) * N + offs_n)[None, :] * L
    # partial dB/dC of this channel block: (batch, n_dblocks, N, L), summed over the group by torch
    dBC_row = ((b * n_dblocks + blk) * N + offs_n)[None, :] * L
    ckpt_row = ckpt_ptr + ((b * dim + offs_d)[:, None] * n_chunks) * N + offs_n[None, :]
    state_offs = (b * dim + offs_d)[:, None] * N + offs_n[None, :]

    g_next = tl.zeros([BLOCK_D, N], tl.float32)       # adjoint of the state after the chunk
    if HAS_DLAST:
        g_next = tl.load(dlast_ptr + state_offs).to(tl.float32)
    dA_acc = tl.zeros([BLOCK_D, N], tl.float32)
    dD_acc = tl.zeros([BLOCK_D], tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], tl.float32)
    for ci in range(n_chunks):
        c = n_chunks - 1 - ci
        t = c * BLOCK_L + offs_t
        mask_t = t < L
        mask = mask_t[None, :] & (offs_d[:, None] < dim)
        offs = row + t[None, :]
        dt, raw = _load_dt(delta_ptr, bias, offs, mask, HAS_BIAS, SOFTPLUS)
        u = tl.load(u_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        Bt = tl.load(B_row + t[:, None], mask=mask_t[:, None], other=0.0).to(tl.float32)
        Ct = tl.load(C_row + t[:, None], mask=mask_t[:, None], other=0.0).to(tl.float32)
        # recompute the chunk's states from its checkpoint
        decay = tl.exp(dt[:, :, None] * A[:, None, :])
        x = (dt * u)[:, :, None] * Bt[None, :, :]
        cum, local = tl.associative_scan((decay, x), 1, _first_order)
        h0 = tl.load(ckpt_row + c * N)
        hs = local + cum * h0[:, None, :]
        dy = tl.load(dout_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32)
            sig = tl.sigmoid(zt)
            y = tl.sum(hs * Ct[None, :, :], axis=2) + u * Dv[:, None]
            dz = dy * y * sig * (1.0 + zt * (1.0 - sig))
            tl.store(dz_ptr + offs, dz.to(dz_ptr.dtype.element_ty), mask=mask)
            dy = dy * zt * sig
        # adjoint: g_t = C_t dy_t + a_{t+1} g_{t+1}; a_{t+1} read one step ahead (1 past the end)
        t1 = t + 1
        mask1 = (t1 < L)[None, :] & (offs_d[:, None] < dim)
        dt1, _ = _load_dt(delta_ptr, bias, row + t1[None, :], mask1, HAS_BIAS, SOFTPLUS)
        decay1 = tl.exp(dt1[:, :, None] * A[:, None, :])
        cum_r, g_local = tl.associative_scan((decay1, Ct[None, :, :] * dy[:, :, None]), 1,
                                             _first_order, reverse=True)
        g = g_local + cum_r * g_next[:, None, :]
        g_next = tl.sum(tl.where(offs_t[None, :, None] == 0, g, 0.0), axis=1)
        # a_t h_{t-1} = h_t - x_t avoids shifting the states by one step
        carried = hs - x
        ddt = tl.sum(g * (A[:, None, :] * carried + Bt[None, :, :] * u[:, :, None]), axis=2)
        du = tl.sum(g * Bt[None, :, :], axis=2) * dt + dy * Dv[:, None]
        gdt = g * dt[:, :, None]
        dA_acc += tl.sum(gdt * carried, axis=1)
        dB = tl.sum(gdt * u[:, :, None], axis=0)                                     # (T, N)
        dC = tl.sum(hs * dy[:, :, None], axis=0)
        tl.store(dB_ptr + dBC_row + t[:, None], dB, mask=mask_t[:, None])
        tl.store(dC_ptr + dBC_row + t[:, None], dC, mask=mask_t[:, None])
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(raw)
        ddt = tl.where(mask, ddt, 0.0)
        dbias_acc += tl.sum(ddt, axis=1)
        dD_acc += tl.sum(dy * u, axis=1)
        tl.store(du_ptr + offs, du.to(du_ptr.dtype.element_ty), mask=mask)
        tl.store(ddelta_ptr + offs, ddt.to(ddelta_ptr.dtype.element_ty), mask=mask)
    tl.store(dA_ptr + state_offs, dA_acc)
    if HAS_D:
        tl.store(dD_ptr + b * dim + offs_d, dD_acc)
    if HAS_BIAS:
        tl.store(dbias_ptr + b * dim + offs_d, dbias_acc)


TILE_ELEMS = 2048
NUM_WARPS = 4


def _launch_config(d_per_group: int, n: int, length: int) -> tuple[int, int, int]:
    """(BLOCK_D, BLOCK_L, num_warps).  BLOCK_D divides every group's channel count, so one program
    reads one group's B/C.  A (BLOCK_D, BLOCK_L, N) tile of ~TILE_ELEMS fp32 keeps the backward's
    live tiles in registers."""
    block_l = min(64, max(16, triton.next_power_of_2(length)))
    block_d = 1
    while block_d * 2 * block_l * n <= TILE_ELEMS and d_per_group % (block_d * 2) == 0:
        block_d *= 2
    return block_d, block_l, NUM_WARPS


class _SelectiveScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
        batch, dim, length = u.shape
        n = A.shape[1]
        B4, C4 = as_grouped(B).contiguous(), as_grouped(C).contiguous()
        gb, gc = B4.shape[1], C4.shape[1]
        block_d, block_l, num_warps = _launch_config(math.gcd(dim // gb, dim // gc), n, length)
        n_dblocks, n_chunks = dim // block_d, triton.cdiv(length, block_l)
        u, delta, A = u.contiguous(), delta.contiguous(), A.contiguous()
        z = z.contiguous() if z is not None else None
        out = torch.empty_like(u)
        ckpt = torch.empty(batch, dim, n_chunks, n, device=u.device, dtype=torch.float32)
        last = torch.empty(batch, dim, n, device=u.device, dtype=torch.float32)
        meta = dict(N=n, BLOCK_D=block_d, BLOCK_L=block_l, HAS_D=D is not None, HAS_Z=z is not None,
                    HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus))
        sizes = (dim, length, n_dblocks, n_chunks, dim // gb, dim // gc, gb, gc)
        _fwd_kernel[(batch * n_dblocks,)](u, delta, A, B4, C4, D, z, delta_bias, out, ckpt, last,
                                          *sizes, **meta, num_warps=num_warps)
        ctx.save_for_backward(u, delta, A, B4, C4, D, z, delta_bias, ckpt)
        ctx.meta, ctx.sizes, ctx.b_shape, ctx.c_shape = meta, sizes, B.shape, C.shape
        ctx.num_warps = num_warps
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None, not zeros
        return out, last

    @staticmethod
    def backward(ctx, dout, dlast):
        u, delta, A, B4, C4, D, z, delta_bias, ckpt = ctx.saved_tensors
        dim, length, n_dblocks, n_chunks, dpg_b, dpg_c, gb, gc = ctx.sizes
        batch, n = u.shape[0], A.shape[1]
        f32 = dict(device=u.device, dtype=torch.float32)
        du, ddelta = torch.empty_like(u), torch.empty_like(delta)
        dz = torch.empty_like(z) if z is not None else None
        dB_part = torch.empty(batch, n_dblocks, n, length, **f32)
        dC_part = torch.empty(batch, n_dblocks, n, length, **f32)
        dA = torch.empty(batch, dim, n, **f32)
        dD = torch.empty(batch, dim, **f32) if D is not None else None
        dbias = torch.empty(batch, dim, **f32) if delta_bias is not None else None
        has_dlast = dlast is not None
        if dout is None:
            dout = torch.zeros_like(u)
        _bwd_kernel[(batch * n_dblocks,)](
            u, delta, A, B4, C4, D, z, delta_bias, ckpt, dout.contiguous(),
            dlast.contiguous() if has_dlast else None,
            du, ddelta, dz, dB_part, dC_part, dA, dD, dbias,
            *ctx.sizes, **ctx.meta, HAS_DLAST=has_dlast, num_warps=ctx.num_warps)
        dB = dB_part.view(batch, gb, n_dblocks // gb, n, length).sum(2).to(B4.dtype)
        dC = dC_part.view(batch, gc, n_dblocks // gc, n, length).sum(2).to(C4.dtype)
        return (du, ddelta, dA.sum(0).to(A.dtype), dB.reshape(ctx.b_shape), dC.reshape(ctx.c_shape),
                dD.sum(0).to(D.dtype) if D is not None else None, dz,
                dbias.sum(0).to(delta_bias.dtype) if delta_bias is not None else None, None, None)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False):
    out, last = _SelectiveScanTriton.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                           return_last_state)
    return (out, last) if return_last_state else out
