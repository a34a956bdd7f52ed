"""Fused Triton SSD scan (Mamba-2's chunked state-space duality), forward and backward.

All seven kernels are Triton; the torch code around them only allocates, reshapes and sums the
per-chunk partial gradients of the parameters (A, D, dt_bias) and casts.

Forward, with chunks of T steps:
1. `_chunk_cumsum_kernel`: dt' = softplus(dt + dt_bias) (0 past the end) and c_l, the inclusive
   in-chunk cumulative sum of a = dt' A, per (batch, head, chunk);
2. `_chunk_state_kernel`: each chunk's end state from its own inputs, sum_s exp(c_T - c_s) dt'_s x_s B_s^T
   (one (headdim x T) @ (T x dstate) dot);
3. `_state_passing_kernel`: the chunk states passed along, h <- exp(c_T) h + state, a loop over the
   chunks (exact decays, no prefix-sum differences across chunks) giving each chunk's entering state
   and the final state;
4. `_chunk_scan_fwd_kernel`: y = exp(c_l) C_l S + (C B^T * exp(c_l - c_s) * dt'_s, causal) @ x + D x,
   gated by silu(z).
Only the per-chunk states (batch, n_chunks, heads, headdim, dstate) exist in memory, never a
per-position state.

Backward recomputes steps 1-3 from the inputs (nothing but y before the gate is saved, and only when
z is given), then:
5. `_chunk_dstate_kernel`: the gradient each chunk's outputs send to its entering state,
   sum_l exp(c_l) dy_l C_l^T;
6. `_state_passing_bwd_kernel`: those passed back from chunk to chunk (the adjoint of 3), giving the
   gradient of every chunk's end state and of the initial state;
7. `_chunk_scan_bwd_kernel`: everything else from (x, dy, B, C, c, entering state, end-state gradient),
   one program per (batch, chunk, group) looping over the group's heads, so that the gradients of
   the shared B and C add up in registers (deterministic, no atomics).  The gradient of the decays is
   formed as sums over the (s < k <= l) pairs each a_k spans, not as the difference of two large
   sums (mamba_ssm's "stable" form).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..selective.triton_fused import _softplus


@triton.jit
def _chunk_cumsum_kernel(dt_ptr, bias_ptr, A_ptr, delta_ptr, cs_ptr, L, H, Lp,
                         T: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    bh = tl.program_id(0)
    c = tl.program_id(1)
    b, h = bh // H, bh % H
    t = c * T + tl.arange(0, T)
    mask = t < L
    raw = tl.load(dt_ptr + (b * L + t).to(tl.int64) * H + h, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        raw += tl.load(bias_ptr + h)
    delta = raw
    if SOFTPLUS:
        delta = _softplus(raw)
    delta = tl.where(mask, delta, 0.0)        # padded steps: decay 1, no input
    cs = tl.cumsum(delta * tl.load(A_ptr + h), 0)
    row = bh.to(tl.int64) * Lp + t
    tl.store(delta_ptr + row, delta)
    tl.store(cs_ptr + row, cs)


@triton.jit
def _load_rows(ptr, b, t, mask_t, width, stride_row, col, offs, L):
    """(T, BLOCK) tile of a (batch, L, ..., width) tensor: rows t of batch b, column block at `col`."""
    rows = (b * L + t).to(tl.int64) * stride_row + col
    return tl.load(ptr + rows[:, None] + offs[None, :], mask=mask_t[:, None] & (offs < width)[None, :],
                   other=0.0).to(tl.float32)


@triton.jit
def _chunk_state_kernel(x_ptr, B_ptr, delta_ptr, cs_ptr, states_ptr, L, H, G, Lp, nc, P, N,
                        T: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
                        PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    h = tl.program_id(1)
    b, c = pid // nc, pid % nc
    g = h // (H // G)
    offs_t = tl.arange(0, T)
    t = c * T + offs_t
    mask_t = t < L
    offs_p = tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    x = _load_rows(x_ptr, b, t, mask_t, P, H * P, h * P, offs_p, L)          # (T, P)
    Bm = _load_rows(B_ptr, b, t, mask_t, N, G * N, g * N, offs_n, L)          # (T, N)
    row = (b * H + h).to(tl.int64) * Lp
    delta = tl.load(delta_ptr + row + t)
    cs = tl.load(cs_ptr + row + t)
    cs_end = tl.load(cs_ptr + row + c * T + T - 1)
    w = delta * tl.exp(cs_end - cs)
    state = tl.dot(tl.trans(x * w[:, None]), Bm, input_precision=PRECISION)   # (P, N)
    out = ((pid * H + h).to(tl.int64) * P + offs_p[:, None]) * N + offs_n[None, :]
    tl.store(states_ptr + out, state, mask=(offs_p < P)[:, None] & (offs_n < N)[None, :])


@triton.jit
def _state_passing_kernel(states_ptr, cs_ptr, init_ptr, entering_ptr, final_ptr, H, Lp, nc, PN,
                          T: tl.constexpr, BLOCK: tl.constexpr, HAS_INIT: tl.constexpr):
    bh = tl.program_id(0)
    b, h = bh // H, bh % H
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < PN
    s = tl.zeros([BLOCK], tl.float32)
    if HAS_INIT:
        s = tl.load(init_ptr + bh.to(tl.int64) * PN + offs, mask=mask, other=0.0)
    for c in range(nc):
        base = ((b * nc + c) * H + h).to(tl.int64) * PN
        tl.store(entering_ptr + base + offs, s, mask=mask)
        decay = tl.exp(tl.load(cs_ptr + bh.to(tl.int64) * Lp + c * T + T - 1))
        s = decay * s + tl.load(states_ptr + base + offs, mask=mask, other=0.0)
    tl.store(final_ptr + bh.to(tl.int64) * PN + offs, s, mask=mask)


@triton.jit
def _load_state(ptr, b, c, h, nc, H, P, N, offs_p, offs_n):
    """(BLOCK_P, BLOCK_N) tile of a (batch, n_chunks, heads, headdim, dstate) fp32 buffer."""
    base = ((b * nc + c) * H + h).to(tl.int64) * P * N
    return tl.load(ptr + base + offs_p[:, None] * N + offs_n[None, :],
                   mask=(offs_p < P)[:, None] & (offs_n < N)[None, :], other=0.0)


@triton.jit
def _gated_dy(dout_ptr, z_ptr, ypre_ptr, b, t, mask_t, H, P, h, offs_p, L, HAS_Z: tl.constexpr):
    """The gradient of y before the silu(z) gate, and that of z (zeros without a gate)."""
    dy = _load_rows(dout_ptr, b, t, mask_t, P, H * P, h * P, offs_p, L)
    dz = tl.zeros_like(dy)
    if HAS_Z:
        zt = _load_rows(z_ptr, b, t, mask_t, P, H * P, h * P, offs_p, L)
        ypre = _load_rows(ypre_ptr, b, t, mask_t, P, H * P, h * P, offs_p, L)
        sig = tl.sigmoid(zt)
        dz = dy * ypre * sig * (1.0 + zt * (1.0 - sig))
        dy = dy * zt * sig
    return dy, dz


@triton.jit
def _chunk_scan_fwd_kernel(x_ptr, z_ptr, B_ptr, C_ptr, D_ptr, delta_ptr, cs_ptr, entering_ptr, out_ptr, ypre_ptr,
                           L, H, G, Lp, nc, P, N,
                           T: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
                           HAS_D: tl.constexpr, HAS_Z: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    h = tl.program_id(1)
    b, c = pid // nc, pid % nc
    g = h // (H // G)
    offs_t = tl.arange(0, T)
    t = c * T + offs_t
    mask_t = t < L
    offs_p = tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    x = _load_rows(x_ptr, b, t, mask_t, P, H * P, h * P, offs_p, L)
    Bm = _load_rows(B_ptr, b, t, mask_t, N, G * N, g * N, offs_n, L)
    Cm = _load_rows(C_ptr, b, t, mask_t, N, G * N, g * N, offs_n, L)
    row = (b * H + h).to(tl.int64) * Lp
    delta = tl.load(delta_ptr + row + t)
    cs = tl.load(cs_ptr + row + t)
    S = _load_state(entering_ptr, b, c, h, nc, H, P, N, offs_p, offs_n)       # (P, N)
    # the entering state read out at every step, decayed by exp(c_l)
    y = tl.exp(cs)[:, None] * tl.dot(Cm, tl.trans(S), input_precision=PRECISION)
    # the chunk's own inputs: a causal (T, T) form
    causal = offs_t[:, None] >= offs_t[None, :]
    decay = tl.where(causal, tl.exp(tl.where(causal, cs[:, None] - cs[None, :], 0.0)), 0.0)
    scores = tl.dot(Cm, tl.trans(Bm), input_precision=PRECISION) * decay * delta[None, :]
    y += tl.dot(scores, x, input_precision=PRECISION)
    if HAS_D:
        y += tl.load(D_ptr + h * P + offs_p, mask=offs_p < P, other=0.0)[None, :] * x
    rows = (b * L + t).to(tl.int64) * (H * P) + h * P
    ptrs = rows[:, None] + offs_p[None, :]
    mask = mask_t[:, None] & (offs_p < P)[None, :]
    if HAS_Z:
        tl.store(ypre_ptr + ptrs, y.to(ypre_ptr.dtype.element_ty), mask=mask)
        zt = tl.load(z_ptr + ptrs, mask=mask, other=0.0).to(tl.float32)
        y = y * zt * tl.sigmoid(zt)
    tl.store(out_ptr + ptrs, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _chunk_dstate_kernel(dout_ptr, z_ptr, ypre_ptr, C_ptr, cs_ptr, ds_ptr, L, H, G, Lp, nc, P, N,
                         T: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
                         HAS_Z: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    h = tl.program_id(1)
    b, c = pid // nc, pid % nc
    g = h // (H // G)
    offs_t = tl.arange(0, T)
    t = c * T + offs_t
    mask_t = t < L
    offs_p = tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    dy, _ = _gated_dy(dout_ptr, z_ptr, ypre_ptr, b, t, mask_t, H, P, h, offs_p, L, HAS_Z)
    Cm = _load_rows(C_ptr, b, t, mask_t, N, G * N, g * N, offs_n, L)
    cs = tl.load(cs_ptr + (b * H + h).to(tl.int64) * Lp + t)
    ds = tl.dot(tl.trans(dy * tl.exp(cs)[:, None]), Cm, input_precision=PRECISION)   # (P, N)
    out = ((pid * H + h).to(tl.int64) * P + offs_p[:, None]) * N + offs_n[None, :]
    tl.store(ds_ptr + out, ds, mask=(offs_p < P)[:, None] & (offs_n < N)[None, :])


@triton.jit
def _state_passing_bwd_kernel(ds_ptr, cs_ptr, dfinal_ptr, dend_ptr, dinit_ptr, H, Lp, nc, PN,
                              T: tl.constexpr, BLOCK: tl.constexpr, HAS_DFINAL: tl.constexpr):
    bh = tl.program_id(0)
    b, h = bh // H, bh % H
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < PN
    g = tl.zeros([BLOCK], tl.float32)
    if HAS_DFINAL:
        g = tl.load(dfinal_ptr + bh.to(tl.int64) * PN + offs, mask=mask, other=0.0)
    for ci in range(nc):
        c = nc - 1 - ci
        base = ((b * nc + c) * H + h).to(tl.int64) * PN
        tl.store(dend_ptr + base + offs, g, mask=mask)          # the gradient of chunk c's end state
        decay = tl.exp(tl.load(cs_ptr + bh.to(tl.int64) * Lp + c * T + T - 1))
        g = tl.load(ds_ptr + base + offs, mask=mask, other=0.0) + decay * g
    tl.store(dinit_ptr + bh.to(tl.int64) * PN + offs, g, mask=mask)


@triton.jit
def _chunk_scan_bwd_kernel(x_ptr, dt_ptr, bias_ptr, A_ptr, z_ptr, ypre_ptr, dout_ptr, B_ptr, C_ptr, D_ptr,
                           delta_ptr, cs_ptr, entering_ptr, dend_ptr,
                           dx_ptr, ddt_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr,
                           L, H, G, Lp, nc, P, N,
                           T: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr,
                           HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                           SOFTPLUS: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    g = tl.program_id(1)
    b, c = pid // nc, pid % nc
    R = H // G
    offs_t = tl.arange(0, T)
    t = c * T + offs_t
    mask_t = t < L
    offs_p = tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    mask_tp = mask_t[:, None] & (offs_p < P)[None, :]
    mask_tn = mask_t[:, None] & (offs_n < N)[None, :]
    Bm = _load_rows(B_ptr, b, t, mask_t, N, G * N, g * N, offs_n, L)          # (T, N)
    Cm = _load_rows(C_ptr, b, t, mask_t, N, G * N, g * N, offs_n, L)
    CB = tl.dot(Cm, tl.trans(Bm), input_precision=PRECISION)                  # (l, s)
    causal = offs_t[:, None] >= offs_t[None, :]
    dB = tl.zeros([T, BLOCK_N], tl.float32)
    dC = tl.zeros([T, BLOCK_N], tl.float32)
    for r in range(R):
        h = g * R + r
        x = _load_rows(x_ptr, b, t, mask_t, P, H * P, h * P, offs_p, L)
        dy, dz = _gated_dy(dout_ptr, z_ptr, ypre_ptr, b, t, mask_t, H, P, h, offs_p, L, HAS_Z)
        head_rows = (b * L + t).to(tl.int64) * (H * P) + h * P
        if HAS_Z:
            tl.store(dz_ptr + head_rows[:, None] + offs_p[None, :], dz.to(dz_ptr.dtype.element_ty), mask=mask_tp)
        row = (b * H + h).to(tl.int64) * Lp
        delta = tl.load(delta_ptr + row + t)
        cs = tl.load(cs_ptr + row + t)
        cs_end = tl.load(cs_ptr + row + c * T + T - 1)
        S = _load_state(entering_ptr, b, c, h, nc, H, P, N, offs_p, offs_n)   # entering state
        Gend = _load_state(dend_ptr, b, c, h, nc, H, P, N, offs_p, offs_n)    # gradient of the end state
        decay = tl.where(causal, tl.exp(tl.where(causal, cs[:, None] - cs[None, :], 0.0)), 0.0)
        to_end = tl.exp(cs_end - cs)
        dyx = tl.dot(dy, tl.trans(x), input_precision=PRECISION)              # (l, s): dy_l . x_s
        kernel = CB * decay
        # d(y)/d(dt'_s x_s): through the outputs l >= s and through the chunk's end state
        end_grad = to_end[:, None] * tl.dot(Bm, tl.trans(Gend), input_precision=PRECISION)   # (T, P)
        bracket = tl.dot(tl.trans(kernel), dy, input_precision=PRECISION) + end_grad
        dx = delta[:, None] * bracket
        if HAS_D:
            Dv = tl.load(D_ptr + h * P + offs_p, mask=offs_p < P, other=0.0)
            dx += Dv[None, :] * dy
            tl.store(dD_ptr + (pid * H + h).to(tl.int64) * P + offs_p, tl.sum(dy * x, axis=0), mask=offs_p < P)
        tl.store(dx_ptr + head_rows[:, None] + offs_p[None, :], dx.to(dx_ptr.dtype.element_ty), mask=mask_tp)
        ddelta = tl.sum(x * bracket, axis=1)
        weighted = decay * dyx
        dB += delta[:, None] * (tl.dot(tl.trans(weighted), Cm, input_precision=PRECISION)
                                + to_end[:, None] * tl.dot(x, Gend, input_precision=PRECISION))
        dyS = tl.dot(dy, S, input_precision=PRECISION)                        # (T, N)
        dC += (tl.exp(cs)[:, None] * dyS
               + tl.dot(weighted * delta[None, :], Bm, input_precision=PRECISION))
        # gradient of a_k = dt'_k A, term by term:
        # outputs read from the entering state depend on every a_k with k <= l
        q = tl.exp(cs) * tl.sum(dyS * Cm, axis=1)
        da = tl.sum(q, axis=0) - tl.cumsum(q, 0) + q
        # the in-chunk form on every pair s < k <= l it spans
        pairs = kernel * dyx * delta[None, :]
        da += tl.sum(tl.where(causal, tl.cumsum(pairs, 1) - pairs, 0.0), axis=0)
        # the end state's inputs s < k, and its decay of the entering state (every k)
        v = delta * tl.sum(x * end_grad, axis=1)
        da += tl.cumsum(v, 0) - v
        da += tl.exp(cs_end) * tl.sum(tl.sum(Gend * S, axis=1), axis=0)
        ddelta += tl.load(A_ptr + h) * da
        tl.store(dA_ptr + pid * H + h, tl.sum(delta * da, axis=0))
        if SOFTPLUS:
            raw = tl.load(dt_ptr + (b * L + t).to(tl.int64) * H + h, mask=mask_t, other=0.0).to(tl.float32)
            if HAS_BIAS:
                raw += tl.load(bias_ptr + h)
            ddelta = ddelta * tl.sigmoid(raw)
        tl.store(ddt_ptr + (b * L + t).to(tl.int64) * H + h, ddelta, mask=mask_t)
    group_rows = (b * L + t).to(tl.int64) * (G * N) + g * N
    tl.store(dB_ptr + group_rows[:, None] + offs_n[None, :], dB, mask=mask_tn)
    tl.store(dC_ptr + group_rows[:, None] + offs_n[None, :], dC, mask=mask_tn)


def _blocks(headdim: int, dstate: int) -> dict:
    # tl.dot needs every dimension >= 16
    return dict(BLOCK_P=max(16, triton.next_power_of_2(headdim)), BLOCK_N=max(16, triton.next_power_of_2(dstate)))


def _num_warps(chunk_size: int) -> int:
    return 4 if chunk_size <= 32 else 8


class _Problem:
    """Sizes and launch settings of one call, shared by forward and backward."""

    def __init__(self, x, B, chunk_size):
        self.batch, self.length, self.heads, self.headdim = x.shape
        self.groups, self.dstate = B.shape[2:]
        self.T = chunk_size
        self.nc = triton.cdiv(self.length, chunk_size)
        self.Lp = self.nc * chunk_size
        self.blocks = _blocks(self.headdim, self.dstate)
        # exact fp32 dots for every input dtype.  TF32 for bf16/fp16 inputs gave, on the H100, gradients
        # off by 10-500x (relative) for dstate 32 / 64 (VMamba m2's, Vim-SSD's) while dstate 16 passed, and
        # tf32x3 crashed with an illegal address (docs/benchmarks.md, SSD section; root cause not found).
        # IEEE costs 1.4x at the kernel level and up to 3.8x per Vim-SSD training step at dstate 64
        self.precision = "ieee"
        self.device = x.device

    def sizes(self):
        return (self.length, self.heads, self.groups, self.Lp, self.nc, self.headdim, self.dstate)

    def f32(self, *shape):
        return torch.empty(*shape, device=self.device, dtype=torch.float32)


def _forward_states(pb: _Problem, x, dt, A, B, dt_bias, initial_states, dt_softplus):
    """Steps 1-3: (delta, cs) (batch, heads, Lp) and the entering states (batch, nc, heads, P, N) with the
    final state (batch, heads, P, N)."""
    b, H, P, N = pb.batch, pb.heads, pb.headdim, pb.dstate
    delta, cs = pb.f32(b, H, pb.Lp), pb.f32(b, H, pb.Lp)
    _chunk_cumsum_kernel[(b * H, pb.nc)](dt, dt_bias, A, delta, cs, pb.length, H, pb.Lp, T=pb.T,
                                         HAS_BIAS=dt_bias is not None, SOFTPLUS=bool(dt_softplus))
    states = pb.f32(b, pb.nc, H, P, N)
    _chunk_state_kernel[(b * pb.nc, H)](x, B, delta, cs, states, *pb.sizes(), T=pb.T, PRECISION=pb.precision,
                                        num_warps=_num_warps(pb.T), **pb.blocks)
    entering, final = torch.empty_like(states), pb.f32(b, H, P, N)
    block = min(1024, triton.next_power_of_2(P * N))
    _state_passing_kernel[(b * H, triton.cdiv(P * N, block))](
        states, cs, initial_states, entering, final, H, pb.Lp, pb.nc, P * N, T=pb.T, BLOCK=block,
        HAS_INIT=initial_states is not None)
    return delta, cs, entering, final


class _SSDTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, z, dt_bias, initial_states, chunk_size, dt_softplus):
        pb = _Problem(x, B, chunk_size)
        x, dt, B, C = x.contiguous(), dt.contiguous(), B.contiguous(), C.contiguous()
        z = z.contiguous() if z is not None else None
        A32 = A.float().contiguous()
        # D per (head, channel), whichever form was given
        D32 = D.float().expand(pb.heads, pb.headdim).contiguous() if D is not None and D.dim() == 2 else (
            D.float()[:, None].expand(pb.heads, pb.headdim).contiguous() if D is not None else None)
        bias32 = dt_bias.float().contiguous() if dt_bias is not None else None
        init32 = initial_states.float().contiguous() if initial_states is not None else None
        delta, cs, entering, final = _forward_states(pb, x, dt, A32, B, bias32, init32, dt_softplus)
        out = torch.empty_like(x)
        ypre = torch.empty_like(x) if z is not None else None   # y before the gate, for dz
        _chunk_scan_fwd_kernel[(pb.batch * pb.nc, pb.heads)](
            x, z, B, C, D32, delta, cs, entering, out, ypre, *pb.sizes(), T=pb.T, HAS_D=D is not None,
            HAS_Z=z is not None, PRECISION=pb.precision, num_warps=_num_warps(pb.T), **pb.blocks)
        ctx.save_for_backward(x, dt, A32, B, C, D32, z, bias32, init32, ypre)
        ctx.pb, ctx.dt_softplus = pb, dt_softplus
        ctx.dtypes = dict(A=A.dtype, D=None if D is None else (D.dtype, D.dim()), dt_bias=None if dt_bias is None
                          else dt_bias.dtype, initial_states=None if initial_states is None else initial_states.dtype)
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None, not zeros
        return out, final

    @staticmethod
    def backward(ctx, dout, dfinal):
        x, dt, A32, B, C, D32, z, bias32, init32, ypre = ctx.saved_tensors
        pb = ctx.pb
        b, H, P, N, nc = pb.batch, pb.heads, pb.headdim, pb.dstate, pb.nc
        dout = torch.zeros_like(x) if dout is None else dout.contiguous()
        dfinal = dfinal.float().contiguous() if dfinal is not None else None
        delta, cs, entering, _ = _forward_states(pb, x, dt, A32, B, bias32, init32, ctx.dt_softplus)
        common = dict(T=pb.T, PRECISION=pb.precision, num_warps=_num_warps(pb.T), **pb.blocks)
        ds = pb.f32(b, nc, H, P, N)
        _chunk_dstate_kernel[(b * nc, H)](dout, z, ypre, C, cs, ds, *pb.sizes(), HAS_Z=z is not None, **common)
        dend, dinit = torch.empty_like(ds), pb.f32(b, H, P, N)
        block = min(1024, triton.next_power_of_2(P * N))
        _state_passing_bwd_kernel[(b * H, triton.cdiv(P * N, block))](
            ds, cs, dfinal, dend, dinit, H, pb.Lp, nc, P * N, T=pb.T, BLOCK=block, HAS_DFINAL=dfinal is not None)
        del ds
        dx = torch.empty_like(x)
        dz = torch.empty_like(z) if z is not None else None
        ddt = pb.f32(b, pb.length, H)
        dB, dC = pb.f32(B.shape), pb.f32(C.shape)
        dA = pb.f32(b * nc, H)
        dD = pb.f32(b * nc, H, P) if D32 is not None else None
        _chunk_scan_bwd_kernel[(b * nc, pb.groups)](
            x, dt, bias32, A32, z, ypre, dout, B, C, D32, delta, cs, entering, dend,
            dx, ddt, dz, dB, dC, dA, dD, *pb.sizes(), HAS_D=D32 is not None, HAS_Z=z is not None,
            HAS_BIAS=bias32 is not None, SOFTPLUS=bool(ctx.dt_softplus), **common)
        types = ctx.dtypes
        grad_D = None
        if dD is not None:
            D_dtype, D_dim = types["D"]
            grad_D = (dD.sum(0) if D_dim == 2 else dD.sum((0, 2))).to(D_dtype)
        return (dx, ddt.to(dt.dtype), dA.sum(0).to(types["A"]), dB.to(B.dtype), dC.to(C.dtype), grad_D, dz,
                ddt.sum((0, 1)).to(types["dt_bias"]) if bias32 is not None else None,
                dinit.to(types["initial_states"]) if init32 is not None else None, None, None)


def ssd_scan_triton(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False,
                    initial_states=None, return_final_states=False):
    out, final = _SSDTriton.apply(x, dt, A, B, C, D, z, dt_bias, initial_states, chunk_size, dt_softplus)
    return (out, final) if return_final_states else out
