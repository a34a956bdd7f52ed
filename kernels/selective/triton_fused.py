"""Fused Triton selective scan, forward and backward.

One program owns one channel of one batch row and walks the sequence in chunks of `BLOCK_L` steps;
inside a chunk it loops over the N states, and for each the recurrence h_t = a_t h_{t-1} + x_t is a
1-D associative scan over (a, x) pairs held in registers (the layout mamba_ssm's CUDA kernel uses:
the whole chunk in flight, one state at a time).  A chunk's entering state comes from the checkpoint
buffer, which the forward fills as it goes: (batch, dim, n_chunks + 1, N) fp32, whose last row is the
final state.  Nothing of size (batch, dim, L, N) is ever stored.

Backward walks the chunks in reverse: it recomputes each state's scan from the checkpoint, runs the
adjoint recurrence g_t = C_t dy_t + a_{t+1} g_{t+1} as a reverse scan (its carry between chunks in a
small (batch, dim, N) buffer), and forms every gradient from (h_t, g_t) in registers.  dB and dC sum
over the channels of a group, so they are accumulated with atomics in fp32 (as mamba_ssm does).
"""
from __future__ import annotations

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
    log1p = tl.where(w == 1.0, e, tl.log(w) * e / tl.where(w == 1.0, 1.0, w - 1.0))
    return tl.where(x > 20.0, x, log1p)


@triton.jit
def _load_dt(delta_ptr, bias, offs, mask, SOFTPLUS: tl.constexpr):
    """dt in fp32, and the pre-softplus value; dt = 0 outside the sequence so that padded steps
    decay by 1 and add nothing."""
    raw = tl.load(delta_ptr + offs, mask=mask, other=0.0).to(tl.float32) + bias
    dt = raw
    if SOFTPLUS:
        dt = _softplus(raw)
    return tl.where(mask, dt, 0.0), raw


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    out_ptr, ypre_ptr, ckpt_ptr,
    dim, L, n_chunks, d_per_group_B, d_per_group_C, G_B, G_C,
    N: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
):
    pid = tl.program_id(0)                       # = batch * dim + channel
    b = pid // dim
    d = pid % dim
    offs = tl.arange(0, BLOCK_L)
    row = pid.to(tl.int64) * L
    B_base = B_ptr + (b * G_B + d // d_per_group_B).to(tl.int64) * N * L
    C_base = C_ptr + (b * G_C + d // d_per_group_C).to(tl.int64) * N * L
    ckpt = ckpt_ptr + pid.to(tl.int64) * (n_chunks + 1) * N
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d).to(tl.float32)
    tl.store(ckpt + tl.arange(0, N), tl.zeros([N], tl.float32))
    tl.debug_barrier()
    for c in range(n_chunks):
        t = c * BLOCK_L + offs
        mask = t < L
        dt, _ = _load_dt(delta_ptr, bias, row + t, mask, SOFTPLUS)
        u = tl.load(u_ptr + row + t, mask=mask, other=0.0).to(tl.float32)
        dtu = dt * u
        y = tl.zeros([BLOCK_L], tl.float32)
        for n in range(N):
            a = tl.load(A_ptr + d * N + n)
            Bn = tl.load(B_base + n * L + t, mask=mask, other=0.0).to(tl.float32)
            Cn = tl.load(C_base + n * L + t, mask=mask, other=0.0).to(tl.float32)
            cum, local = tl.associative_scan((tl.exp(dt * a), dtu * Bn), 0, _first_order)
            hs = local + cum * tl.load(ckpt + c * N + n)
            y += hs * Cn
            # padded steps keep the state, so the chunk's last row is the state after its last real step
            tl.store(ckpt + (c + 1) * N + n + offs * 0, hs, mask=offs == BLOCK_L - 1)
        tl.debug_barrier()                        # the next chunk reads the states stored above
        if HAS_D:
            y += u * tl.load(D_ptr + d).to(tl.float32)
        if HAS_Z:
            tl.store(ypre_ptr + row + t, y.to(ypre_ptr.dtype.element_ty), mask=mask)
            zt = tl.load(z_ptr + row + t, mask=mask, other=0.0).to(tl.float32)
            y = y * zt * tl.sigmoid(zt)
        tl.store(out_ptr + row + t, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ypre_ptr, ckpt_ptr, dout_ptr,
    gcarry_ptr, du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr,
    dim, L, n_chunks, d_per_group_B, d_per_group_C, G_B, G_C,
    N: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
):
    pid = tl.program_id(0)
    b = pid // dim
    d = pid % dim
    offs = tl.arange(0, BLOCK_L)
    row = pid.to(tl.int64) * L
    group_B = (b * G_B + d // d_per_group_B).to(tl.int64) * N * L
    group_C = (b * G_C + d // d_per_group_C).to(tl.int64) * N * L
    ckpt = ckpt_ptr + pid.to(tl.int64) * (n_chunks + 1) * N
    gcarry = gcarry_ptr + pid.to(tl.int64) * N    # adjoint of the state after the chunk, per state
    dA_row = dA_ptr + pid.to(tl.int64) * N
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d).to(tl.float32)
    Dv = 0.0
    if HAS_D:
        Dv = tl.load(D_ptr + d).to(tl.float32)
    dA_acc = tl.zeros([N], tl.float32)
    offs_n = tl.arange(0, N)
    dD_acc = 0.0
    dbias_acc = 0.0
    for ci in range(n_chunks):
        c = n_chunks - 1 - ci
        t = c * BLOCK_L + offs
        mask = t < L
        dt, raw = _load_dt(delta_ptr, bias, row + t, mask, SOFTPLUS)
        dt1, _ = _load_dt(delta_ptr, bias, row + t + 1, t + 1 < L, SOFTPLUS)   # a_{t+1}: 1 past the end
        u = tl.load(u_ptr + row + t, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dout_ptr + row + t, mask=mask, other=0.0).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_ptr + row + t, mask=mask, other=0.0).to(tl.float32)
            ypre = tl.load(ypre_ptr + row + t, mask=mask, other=0.0).to(tl.float32)
            sig = tl.sigmoid(zt)
            tl.store(dz_ptr + row + t, (dy * ypre * sig * (1.0 + zt * (1.0 - sig))).to(dz_ptr.dtype.element_ty),
                     mask=mask)
            dy = dy * zt * sig
        dtu = dt * u
        du = dy * Dv
        ddt = tl.zeros([BLOCK_L], tl.float32)
        # the previous step's inputs, for h_{t-1}: an exclusive scan read from memory one step back
        # (the first step of the chunk gets the identity (1, 0) and starts from the checkpoint)
        prev = offs > 0
        dt0, _ = _load_dt(delta_ptr, bias, row + t - 1, prev & (t - 1 < L), SOFTPLUS)
        dtu0 = dt0 * tl.load(u_ptr + row + t - 1, mask=prev & (t - 1 < L), other=0.0).to(tl.float32)
        for n in range(N):
            a = tl.load(A_ptr + d * N + n)
            Bn = tl.load(B_ptr + group_B + n * L + t, mask=mask, other=0.0).to(tl.float32)
            Cn = tl.load(C_ptr + group_C + n * L + t, mask=mask, other=0.0).to(tl.float32)
            B0 = tl.load(B_ptr + group_B + n * L + t - 1, mask=prev & (t - 1 < L), other=0.0).to(tl.float32)
            cum, local = tl.associative_scan((tl.exp(dt0 * a), dtu0 * B0), 0, _first_order)
            h_prev = local + cum * tl.load(ckpt + c * N + n)
            # a_t h_{t-1} formed as a product: h_t - x_t would cancel where the decay is small
            carried = tl.exp(dt * a) * h_prev
            hs = carried + dtu * Bn
            cum_r, g_local = tl.associative_scan((tl.exp(dt1 * a), Cn * dy), 0, _first_order, reverse=True)
            g = g_local + cum_r * tl.load(gcarry + n)
            tl.store(gcarry + n + offs * 0, g, mask=offs == 0)
            ddt += g * (a * carried + Bn * u)
            du += g * Bn * dt
            dA_acc += tl.where(offs_n == n, tl.sum(g * dt * carried, axis=0), 0.0)
            tl.atomic_add(dB_ptr + group_B + n * L + t, g * dtu, mask=mask, sem="relaxed")
            tl.atomic_add(dC_ptr + group_C + n * L + t, hs * dy, mask=mask, sem="relaxed")
        tl.debug_barrier()                        # the previous chunk reads the carries stored above
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(raw)
        ddt = tl.where(mask, ddt, 0.0)
        dbias_acc += tl.sum(ddt, axis=0)
        dD_acc += tl.sum(dy * u, axis=0)
        tl.store(du_ptr + row + t, du.to(du_ptr.dtype.element_ty), mask=mask)
        tl.store(ddelta_ptr + row + t, ddt.to(ddelta_ptr.dtype.element_ty), mask=mask)
    tl.store(dA_row + offs_n, dA_acc)
    if HAS_D:
        tl.store(dD_ptr + pid, dD_acc)
    if HAS_BIAS:
        tl.store(dbias_ptr + pid, dbias_acc)


def _launch_config(length: int) -> tuple[int, int]:
    """(BLOCK_L, num_warps).  One warp per program: the scans and sums of a chunk then need no
    barrier between warps, and many programs share an SM.  A 256-step chunk pays off only for long
    sequences (H100 sweep, docs/benchmarks.md)."""
    block_l = 256 if length > 8192 else 128
    return min(block_l, max(32, triton.next_power_of_2(length))), 1


class _SelectiveScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus):
        batch, dim, length = u.shape
        n = A.shape[1]
        B4, C4 = as_grouped(B).contiguous(), as_grouped(C).contiguous()
        gb, gc = B4.shape[1], C4.shape[1]
        block_l, num_warps = _launch_config(length)
        n_chunks = triton.cdiv(length, block_l)
        u, delta, A = u.contiguous(), delta.contiguous(), A.contiguous()
        z, D, delta_bias = (t.contiguous() if t is not None else None for t in (z, D, delta_bias))
        out = torch.empty_like(u)
        ypre = torch.empty_like(u) if z is not None else None   # y before the gate, for dz
        ckpt = torch.empty(batch, dim, n_chunks + 1, n, device=u.device, dtype=torch.float32)
        meta = dict(N=n, BLOCK_L=block_l, HAS_D=D is not None, HAS_Z=z is not None,
                    HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus), num_warps=num_warps)
        sizes = (dim, length, n_chunks, dim // gb, dim // gc, gb, gc)
        _fwd_kernel[(batch * dim,)](u, delta, A, B4, C4, D, z, delta_bias, out, ypre, ckpt, *sizes, **meta)
        ctx.save_for_backward(u, delta, A, B4, C4, D, z, delta_bias, ypre, ckpt)
        ctx.meta, ctx.sizes, ctx.b_shape, ctx.c_shape = meta, sizes, B.shape, C.shape
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None, not zeros
        return out, ckpt[:, :, -1].clone()

    @staticmethod
    def backward(ctx, dout, dlast):
        u, delta, A, B4, C4, D, z, delta_bias, ypre, ckpt = ctx.saved_tensors
        batch, dim, _ = u.shape
        f32 = dict(device=u.device, dtype=torch.float32)
        dout = torch.zeros_like(u) if dout is None else dout.contiguous()
        gcarry = (dlast.float().contiguous().clone() if dlast is not None
                  else torch.zeros(batch, dim, A.shape[1], **f32))
        du, ddelta = torch.empty_like(u), torch.empty_like(delta)
        dz = torch.empty_like(z) if z is not None else None
        dB = torch.zeros(B4.shape, **f32)
        dC = torch.zeros(C4.shape, **f32)
        dA = torch.empty(batch, dim, A.shape[1], **f32)
        dD = torch.empty(batch, dim, **f32) if D is not None else None
        dbias = torch.empty(batch, dim, **f32) if delta_bias is not None else None
        _bwd_kernel[(batch * dim,)](
            u, delta, A, B4, C4, D, z, delta_bias, ypre, ckpt, dout, gcarry,
            du, ddelta, dz, dB, dC, dA, dD, dbias, *ctx.sizes, **ctx.meta)
        return (du, ddelta, dA.sum(0), dB.to(B4.dtype).reshape(ctx.b_shape),
                dC.to(C4.dtype).reshape(ctx.c_shape),
                dD.sum(0).to(D.dtype) if D is not None else None, dz,
                dbias.sum(0).to(delta_bias.dtype) if delta_bias is not None else None, None)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False):
    out, last = _SelectiveScanTriton.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return (out, last) if return_last_state else out
