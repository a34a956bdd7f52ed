"""Fused Triton selective scan, forward and backward: the `triton` backend.

Two kernel designs, picked per shape by `choose_kernel` (or by name: kernel="chunked" / "blocked"):
- "blocked" (triton_blocked.py): a program owns a block of channels x all N states and walks time
  step by step, sharing each B/C load across the block; reads strided (time-major) inputs in place
  and walks backwards in time with reverse=True.
- "chunked" (this file, below): one program per channel, time in registers.

`forward(...) -> (y, checkpoints)` and `backward(...) -> grads` are the two halves as plain functions
(what an autograd.Function or a torch.library custom op wraps); `selective_scan_triton` is the
backend entry point.

The chunked kernel: one program (one warp) owns one channel of one batch row and walks the sequence in
chunks of `BLOCK_L` steps; inside a chunk it loops over the N states, and for each the recurrence
h_t = a_t h_{t-1} + x_t is an associative scan over (a, x) pairs held in registers (the layout mamba_ssm's
CUDA kernel uses: the whole chunk in flight, one state at a time).  The chunk is a (32, BLOCK_L / 32) tile,
each lane's steps consecutive (see `_tile`).  A chunk's entering state comes from the checkpoint buffer,
which the forward fills as it goes: (batch, dim, n_chunks + 1, N) fp32 in scan order, whose last row is the
final state.  Nothing of size (batch, dim, L, N) is ever stored.  reverse=True walks the memory chunks
backwards and scans each one backwards, in memory order (no flipped copies, and the same vector loads).

Backward walks the chunks against the scan: it recomputes each state's scan from the checkpoint, runs the
adjoint recurrence g_t = C_t dy_t + a_{t+1} g_{t+1} as a scan the other way (its carry between chunks in a
small (batch, dim, N) buffer), and forms every gradient from (h_t, g_t) in registers; y before the
gate (for dz) is re-formed from the recomputed states, not stored by the forward.  dB and dC sum
over the channels of a group, so they are accumulated with atomics in fp32 (as mamba_ssm does).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import triton_blocked as blocked
from ._common import as_grouped
from ._triton_common import LOG2E as _LOG2E
from ._triton_common import softplus as _softplus

LOG2E = tl.constexpr(_LOG2E)   # exp(x) = exp2(x log2 e): A is scaled once per state, exp2 per step


@triton.jit
def _first_order(a1, x1, a2, x2):
    # compose h -> a1 h + x1 then h -> a2 h + x2
    return a1 * a2, a2 * x1 + x2


@triton.jit
def _load_dt(delta_ptr, bias, offs, mask, SOFTPLUS: tl.constexpr):
    """dt in fp32, and the pre-softplus value; dt = 0 outside the sequence so that padded steps
    decay by 1 and add nothing."""
    raw = tl.load(delta_ptr + offs, mask=mask, other=0.0).to(tl.float32) + bias
    dt = raw
    if SOFTPLUS:
        dt = _softplus(raw)
    return tl.where(mask, dt, 0.0), raw


# A chunk of BLOCK_L = 32 * VEC steps is a (32, VEC) tile: lane l holds the VEC consecutive steps l * VEC ..
# l * VEC + VEC - 1.  Its scans run VEC steps in each thread's registers, then across the 32 lanes by warp
# shuffles.  A reversed scan (the scan order is memory order backwards) flips the tile's columns, which is free
# in registers; Triton's own `associative_scan(reverse=True)` instead reverses the lane order with butterfly
# shuffles before and after (92 shuffles a scan against 12 in sm_90 SASS, triton 3.6, session 13), and the
# backward's adjoint scan runs against the scan order, so that cost was in every backward.

@triton.jit
def _tile(VEC: tl.constexpr):
    """The chunk's step offsets as a (32, VEC) tile."""
    return tl.arange(0, 32)[:, None] * VEC + tl.arange(0, VEC)[None, :]


@triton.jit
def _flip_cols(x, VEC: tl.constexpr):
    if VEC > 1:
        x = tl.flip(x, 1)
    return x


@triton.jit
def _column(x, IDX: tl.constexpr, VEC: tl.constexpr):
    """Column IDX of a (32, VEC) tile, (32,)."""
    return tl.sum(tl.where(tl.arange(0, VEC)[None, :] == IDX, x, 0.0), 1)


@triton.jit
def _shift_cols(x, first, VEC: tl.constexpr):
    """Columns moved one to the right (column j gets column j - 1), column 0 gets `first` (32,): in-register
    moves by split / join (a gather along the tile's columns would go through shared memory)."""
    tl.static_assert(VEC == 1 or VEC == 2 or VEC == 4 or VEC == 8, "chunks of 32, 64, 128 or 256 steps")
    R: tl.constexpr = 32
    if VEC == 1:
        out = first[:, None]
    elif VEC == 2:
        c0, c1 = tl.split(x)
        out = tl.join(first, c0)
    elif VEC == 4:            # column j = 2 p + q
        e, o = tl.split(tl.reshape(x, [R, 2, 2]))
        c0, c2 = tl.split(e)
        c1, c3 = tl.split(o)
        out = tl.reshape(tl.join(tl.join(first, c1), tl.join(c0, c2)), [R, 4])
    else:                     # VEC == 8: column j = 4 p + 2 q + r
        x0, x1 = tl.split(tl.reshape(x, [R, 2, 2, 2]))
        x00, x01 = tl.split(x0)
        x10, x11 = tl.split(x1)
        c0, c4 = tl.split(x00)
        c2, c6 = tl.split(x01)
        c1, c5 = tl.split(x10)
        c3, c7 = tl.split(x11)
        out = tl.reshape(tl.join(tl.join(tl.join(first, c3), tl.join(c1, c5)),
                                 tl.join(tl.join(c0, c4), tl.join(c2, c6))), [R, 8])
    return out


@triton.jit
def _shift(x, first, VEC: tl.constexpr, REVERSE: tl.constexpr):
    """x moved one step later in scan order inside each lane; each lane's first step gets first (32,)."""
    return _flip_cols(_shift_cols(_flip_cols(x, VEC), first, VEC), VEC) if REVERSE else _shift_cols(x, first, VEC)


@triton.jit
def _scan_lanes(a, x, REVERSE: tl.constexpr):
    """Exclusive scan of the lanes' (a, x) (32,) in scan order (Hillis-Steele by shuffles): each lane gets the
    composition of the lanes before it, the first lane (1, 0)."""
    lane = tl.arange(0, 32)
    for s in tl.static_range(5):
        if REVERSE:
            src = tl.minimum(lane + (1 << s), 31)
            ok = lane + (1 << s) < 32
        else:
            src = tl.maximum(lane - (1 << s), 0)
            ok = lane >= (1 << s)
        a_p = tl.gather(a, src, 0)
        x_p = tl.gather(x, src, 0)
        x = tl.where(ok, a * x_p + x, x)      # the earlier lanes' composition first
        a = tl.where(ok, a * a_p, a)
    if REVERSE:
        src = tl.minimum(lane + 1, 31)
        ok = lane < 31
    else:
        src = tl.maximum(lane - 1, 0)
        ok = lane > 0
    return tl.where(ok, tl.gather(a, src, 0), 1.0), tl.where(ok, tl.gather(x, src, 0), 0.0)


@triton.jit
def _scan(a, x, h0, VEC: tl.constexpr, REVERSE: tl.constexpr):
    """h_t = a_t h_{t-1} + x_t over a (32, VEC) tile in scan order from h0 (scalar): (h, the state entering each
    lane (32,))."""
    ca, xa = tl.associative_scan((_flip_cols(a, VEC), _flip_cols(x, VEC)) if REVERSE else (a, x), 1, _first_order)
    a_lane = _column(ca, VEC - 1, VEC)
    x_lane = _column(xa, VEC - 1, VEC)
    if REVERSE:
        ca = _flip_cols(ca, VEC)
        xa = _flip_cols(xa, VEC)
    a_in, x_in = _scan_lanes(a_lane, x_lane, REVERSE)
    h_in = x_in + a_in * h0
    return xa + ca * h_in[:, None], h_in


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    out_ptr, ckpt_ptr,
    dim, L, L_bc, n_chunks, d_per_group_B, d_per_group_C,
    su_b, su_d, sdt_b, sdt_d, sz_b, sz_d, sB_b, sB_g, sB_n, sC_b, sC_g, sC_n,
    N: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, UNROLL: tl.constexpr,
):
    VEC: tl.constexpr = BLOCK_L // 32
    pid = tl.program_id(0)                       # = batch * dim + channel
    b = pid // dim
    d = pid % dim
    offs = _tile(VEC)
    row = pid.to(tl.int64) * L                   # out: contiguous
    row_u = b.to(tl.int64) * su_b + d.to(tl.int64) * su_d
    row_dt = b.to(tl.int64) * sdt_b + d.to(tl.int64) * sdt_d
    row_z = b.to(tl.int64) * sz_b + d.to(tl.int64) * sz_d
    # B, C: unit time stride, rows of L_bc (see `_bc_rows`)
    B_base = B_ptr + b.to(tl.int64) * sB_b + (d // d_per_group_B) * sB_g
    C_base = C_ptr + b.to(tl.int64) * sC_b + (d // d_per_group_C) * sC_g
    ckpt = ckpt_ptr + pid.to(tl.int64) * (n_chunks + 1) * N
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d).to(tl.float32)
    tl.store(ckpt + tl.arange(0, N), tl.zeros([N], tl.float32))
    tl.debug_barrier()
    for ci in range(n_chunks):
        # memory chunk c, in scan order; the checkpoint rows are in scan order (ci)
        c = n_chunks - 1 - ci if REVERSE else ci
        t = c * BLOCK_L + offs
        mask = t < L
        dt, _ = _load_dt(delta_ptr, bias, row_dt + t, mask, SOFTPLUS)
        u = tl.load(u_ptr + row_u + t, mask=mask, other=0.0).to(tl.float32)
        dtu = dt * u
        y = tl.zeros([32, VEC], tl.float32)
        for n in tl.range(N, loop_unroll_factor=UNROLL):
            a2 = tl.load(A_ptr + d * N + n) * LOG2E
            Bn = tl.load(B_base + n * sB_n + t, mask=t < L_bc, other=0.0).to(tl.float32)
            Cn = tl.load(C_base + n * sC_n + t, mask=t < L_bc, other=0.0).to(tl.float32)
            hs = _scan(tl.exp2(dt * a2), dtu * Bn, tl.load(ckpt + ci * N + n), VEC, REVERSE)[0]
            y += hs * Cn
            # padded steps keep the state, so the chunk's last step in scan order holds the state after it
            tl.store(ckpt + (ci + 1) * N + n + offs * 0, hs, mask=offs == (0 if REVERSE else BLOCK_L - 1))
        tl.debug_barrier()                        # the next chunk reads the states stored above
        if HAS_D:
            y += u * tl.load(D_ptr + d).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_ptr + row_z + t, mask=mask, other=0.0).to(tl.float32)
            y = y * zt * tl.sigmoid(zt)
        tl.store(out_ptr + row + t, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, dout_ptr,
    gcarry_ptr, du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr,
    dim, L, L_bc, n_chunks, d_per_group_B, d_per_group_C, G_B, G_C,
    su_b, su_d, sdt_b, sdt_d, sz_b, sz_d, sdy_b, sdy_d, sB_b, sB_g, sB_n, sC_b, sC_g, sC_n,
    N: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr,
):
    VEC: tl.constexpr = BLOCK_L // 32
    pid = tl.program_id(0)
    b = pid // dim
    d = pid % dim
    offs = _tile(VEC)
    row = pid.to(tl.int64) * L                   # du, ddelta, dz: contiguous
    row_u = b.to(tl.int64) * su_b + d.to(tl.int64) * su_d
    row_dt = b.to(tl.int64) * sdt_b + d.to(tl.int64) * sdt_d
    row_z = b.to(tl.int64) * sz_b + d.to(tl.int64) * sz_d
    row_dy = b.to(tl.int64) * sdy_b + d.to(tl.int64) * sdy_d
    group_B = (b * G_B + d // d_per_group_B).to(tl.int64) * N * L_bc    # dB, dC: fp32, contiguous rows of L_bc
    group_C = (b * G_C + d // d_per_group_C).to(tl.int64) * N * L_bc
    B_base = B_ptr + b.to(tl.int64) * sB_b + (d // d_per_group_B) * sB_g
    C_base = C_ptr + b.to(tl.int64) * sC_b + (d // d_per_group_C) * sC_g
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
    dt_next = 0.0
    lane = tl.arange(0, 32)
    # the chunk's first and last steps in scan order, and each lane's first column in scan order
    FIRST: tl.constexpr = BLOCK_L - 1 if REVERSE else 0
    LAST: tl.constexpr = 0 if REVERSE else BLOCK_L - 1
    COL0: tl.constexpr = VEC - 1 if REVERSE else 0
    for ci in range(n_chunks):
        c = ci if REVERSE else n_chunks - 1 - ci  # memory chunk, walking the scan backwards
        cs = n_chunks - 1 - ci                    # its index in scan order (checkpoint row)
        t = c * BLOCK_L + offs
        mask = t < L
        dt, raw = _load_dt(delta_ptr, bias, row_dt + t, mask, SOFTPLUS)
        # dt of each next step in scan order (a_{t+1} of the adjoint recurrence), in registers: the next
        # lane's first, past the chunk's last step the next chunk's first (the previous iteration's), 0 past the end
        first_dt = _column(dt, COL0, VEC)
        if REVERSE:
            nxt = tl.where(lane == 0, dt_next, tl.gather(first_dt, tl.maximum(lane - 1, 0), 0))
        else:
            nxt = tl.where(lane == 31, dt_next, tl.gather(first_dt, tl.minimum(lane + 1, 31), 0))
        dt1 = _shift(dt, nxt, VEC, not REVERSE)
        u = tl.load(u_ptr + row_u + t, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dout_ptr + row_dy + t, mask=mask, other=0.0).to(tl.float32)
        dy_out = dy
        if HAS_Z:
            zt = tl.load(z_ptr + row_z + t, mask=mask, other=0.0).to(tl.float32)
            sig = tl.sigmoid(zt)
            dy = dy * zt * sig
        dtu = dt * u
        du = dy * Dv
        ddt = tl.zeros([32, VEC], tl.float32)
        ypre = u * Dv                             # y before the gate, re-formed from the states below
        for n in range(N):
            a = tl.load(A_ptr + d * N + n)
            a2 = a * LOG2E
            Bn = tl.load(B_base + n * sB_n + t, mask=t < L_bc, other=0.0).to(tl.float32)
            Cn = tl.load(C_base + n * sC_n + t, mask=t < L_bc, other=0.0).to(tl.float32)
            decay = tl.exp2(dt * a2)
            hs, h_in = _scan(decay, dtu * Bn, tl.load(ckpt + cs * N + n), VEC, REVERSE)
            # a_t h_{t-1} formed as a product: h_t - x_t would cancel where the decay is small
            carried = decay * _shift(hs, h_in, VEC, REVERSE)
            g = _scan(tl.exp2(dt1 * a2), Cn * dy, tl.load(gcarry + n), VEC, not REVERSE)[0]
            tl.store(gcarry + n + offs * 0, g, mask=offs == FIRST)
            ypre += hs * Cn
            ddt += g * (a * carried + Bn * u)
            du += g * Bn * dt
            dA_acc += tl.where(offs_n == n, tl.sum(g * dt * carried), 0.0)
            tl.atomic_add(dB_ptr + group_B + n * L_bc + t, g * dtu, mask=t < L_bc, sem="relaxed")
            tl.atomic_add(dC_ptr + group_C + n * L_bc + t, hs * dy, mask=t < L_bc, sem="relaxed")
        tl.debug_barrier()                        # the previous chunk reads the carries stored above
        if HAS_Z:
            tl.store(dz_ptr + row + t, (dy_out * ypre * sig * (1.0 + zt * (1.0 - sig))).to(dz_ptr.dtype.element_ty),
                     mask=mask)
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(raw)
        ddt = tl.where(mask, ddt, 0.0)
        dbias_acc += tl.sum(ddt)
        dD_acc += tl.sum(dy * u)
        tl.store(du_ptr + row + t, du.to(du_ptr.dtype.element_ty), mask=mask)
        tl.store(ddelta_ptr + row + t, ddt.to(ddelta_ptr.dtype.element_ty), mask=mask)
        dt_next = tl.sum(tl.where(offs == FIRST, dt, 0.0))
    tl.store(dA_row + offs_n, dA_acc)
    if HAS_D:
        tl.store(dD_ptr + pid, dD_acc)
    if HAS_BIAS:
        tl.store(dbias_ptr + pid, dbias_acc)


def _launch_config(length: int, n: int, forward_only: bool = False) -> tuple[int, int]:
    """(BLOCK_L, num_warps) of the chunked kernels for sequence length `length` and state size `n`.  One warp
    per program: the scans and sums of a chunk then need no barrier between warps, and many programs share
    an SM.  The backward is fastest at 128-step chunks, at 256 for long sequences and at 64 for N = 1 at
    L <= 256 (VMamba's third stage), and the forward that stores its checkpoints must use the backward's
    chunks.  A forward alone (`forward_only`: inference on 16-bit inputs) takes 256-step chunks: H100 bf16,
    forward ms at 128 (64 at stage 3) against 256: vim_s_layer 0.31 vs 0.27, vim_s_1024 0.81 vs 0.61, VMamba-T
    stage 1 0.47 vs 0.45, stage 3 0.15 vs 0.11 (session 13 sweep, docs/benchmarks.md; fp32 not measured)."""
    if forward_only:
        block_l = 256
    else:
        block_l = 256 if length > 8192 else 64 if n == 1 and length <= 256 else 128
    return min(block_l, max(32, triton.next_power_of_2(length))), 1


def _forward_only(u, store_checkpoints: bool) -> bool:
    return not store_checkpoints and u.dtype in (torch.float16, torch.bfloat16)


def _fwd_unroll(dtype: torch.dtype, n: int) -> int:
    """The forward's state loop unrolled 2x for 16-bit inputs with N > 1: faster in bf16 on the H100
    (2026-12-07, bench_kernels fwd+bwd: vim_s_layer 2.60 vs 2.74 ms, vim_s_1024 4.47 vs 4.51, long 6.52
    vs 6.72; direct forward calls 0.38 vs 0.42, 0.92 vs 1.03, 1.03 vs 1.22), slower in fp32 (forward
    vim_s_layer 0.67 vs 0.56 ms, vim_s_1024 1.46 vs 1.30), where the loads are twice as wide."""
    return 2 if dtype in (torch.float16, torch.bfloat16) and n > 1 else 1


def _rows(t):
    """(tensor, batch stride, channel stride) of a (batch, dim, L) input read in place: any batch and
    channel strides, unit time stride (else one contiguous copy).  Slices and chunks of a larger
    buffer -- the gate z in the in-projection's output, a causal conv's first L outputs -- stay views."""
    if t is None:
        return None, 0, 0
    if t.stride(-1) != 1:
        t = t.contiguous()
    return t, t.stride(0), t.stride(1)


ROW_ALIGN = 16   # elements: Triton specialises integer arguments divisible by 16, which proves a row aligned


def _bc_rows(t):
    """(tensor, row length) of a grouped B or C (batch, G, N, L) as the chunked kernels read it: unit time
    stride and rows whose starts the compiler can prove aligned -- in place where they already are, else a
    copy into rows of L rounded up to ROW_ALIGN, zeros past L.  With aligned rows the state loop's B / C loads
    and dB / dC atomics are vector instructions over each lane's consecutive steps (the tile backward's state
    loop at L = 197: 222 sm_90 instructions, 2 LDG.64, 2 vector REDs; docs/benchmarks.md, session 13).  The
    copy is batch x G x N x L, small beside the activations; it also turns token-major slices of a projection
    (time stride 2N + rank) into unit stride."""
    length = t.shape[-1]
    if t.stride(-1) == 1 and length % ROW_ALIGN == 0 and all(
            s % ROW_ALIGN == 0 for s, n in zip(t.stride()[:-1], t.shape[:-1]) if n > 1):
        return t, length
    row = triton.cdiv(length, ROW_ALIGN) * ROW_ALIGN
    out = t.new_zeros(*t.shape[:-1], row)
    out[..., :length].copy_(t)
    return out, row


def _bcg_strides(t):
    """B / C's batch, group and state strides (size-1 dimensions' strides read as 0: never multiplied by a
    nonzero index, and so they do not spoil the alignment the compiler proves)."""
    return [s if n > 1 else 0 for s, n in zip(t.stride()[:-1], t.shape[:-1])]


def _chunked_forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, reverse=False, store_checkpoints=True):
    batch, dim, length = u.shape
    n = A.shape[1]
    block_l, num_warps = _launch_config(length, n, _forward_only(u, store_checkpoints))
    n_chunks = triton.cdiv(length, block_l)
    (u, *su), (delta, *sdt), (z, *sz) = _rows(u), _rows(delta), _rows(z)
    (B4, row), (C4, _) = _bc_rows(B4), _bc_rows(C4)
    A = A.contiguous()
    D, delta_bias = (t.contiguous() if t is not None else None for t in (D, delta_bias))
    out = torch.empty(batch, dim, length, device=u.device, dtype=u.dtype)
    ckpt = torch.empty(batch, dim, n_chunks + 1, n, device=u.device, dtype=torch.float32)
    gb, gc = B4.shape[1], C4.shape[1]
    _fwd_kernel[(batch * dim,)](
        u, delta, A, B4, C4, D, z, delta_bias, out, ckpt, dim, length, row, n_chunks, dim // gb, dim // gc,
        *su, *sdt, *sz, *_bcg_strides(B4), *_bcg_strides(C4),
        N=n, BLOCK_L=block_l, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse), UNROLL=_fwd_unroll(u.dtype, n), num_warps=num_warps)
    return out, ckpt


def _chunked_backward(dout, dlast, u, delta, A, B4, C4, D, z, delta_bias, ckpt, delta_softplus, reverse=False):
    batch, dim, length = u.shape
    n = A.shape[1]
    block_l, num_warps = _launch_config(length, n)
    n_chunks = triton.cdiv(length, block_l)
    (u, *su), (delta, *sdt), (z, *sz), (dout, *sdy) = _rows(u), _rows(delta), _rows(z), _rows(dout)
    (B4, row), (C4, _) = _bc_rows(B4), _bc_rows(C4)
    A = A.contiguous()
    D, delta_bias = (t.contiguous() if t is not None else None for t in (D, delta_bias))
    f32 = dict(device=u.device, dtype=torch.float32)
    gcarry = dlast.float().contiguous().clone() if dlast is not None else torch.zeros(batch, dim, n, **f32)
    du = torch.empty(batch, dim, length, device=u.device, dtype=u.dtype)
    ddelta = torch.empty(batch, dim, length, device=u.device, dtype=delta.dtype)
    dz = torch.empty(batch, dim, length, device=u.device, dtype=z.dtype) if z is not None else None
    # dB / dC in rows of B's aligned length (the kernel's atomics are then vectors of a lane's steps), returned as views
    dB, dC = torch.zeros(*B4.shape[:-1], row, **f32), torch.zeros(*C4.shape[:-1], row, **f32)
    dA = torch.empty(batch, dim, n, **f32)
    dD = torch.empty(batch, dim, **f32) if D is not None else None
    dbias = torch.empty(batch, dim, **f32) if delta_bias is not None else None
    gb, gc = B4.shape[1], C4.shape[1]
    _bwd_kernel[(batch * dim,)](
        u, delta, A, B4, C4, D, z, delta_bias, ckpt, dout, gcarry, du, ddelta, dz, dB, dC, dA, dD, dbias,
        dim, length, row, n_chunks, dim // gb, dim // gc, gb, gc, *su, *sdt, *sz, *sdy,
        *_bcg_strides(B4), *_bcg_strides(C4),
        N=n, BLOCK_L=block_l, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse), num_warps=num_warps)
    return (du, ddelta, dA.sum(0), dB[..., :length], dC[..., :length], dD.sum(0) if D is not None else None, dz,
            dbias.sum(0) if delta_bias is not None else None)


# ------------------------------------------------------------------------------------------ dispatch

KERNELS = ("chunked", "blocked")


# the blocked forward's programs x segments below which it loses to the chunked kernel (too few warps to
# fill an H200: Vim-S at 224 px batch 8 has 192 programs x 2 segments; session-6 sweep, docs/benchmarks.md)
BLOCKED_MIN_WARPS = 2048


def choose_kernel(batch: int, dim: int, length: int, n: int, groups_b: int = 1, groups_c: int = 1, *,
                  inference: bool = False, token_major: bool = False) -> str:
    """The kernel for a shape class, measured on the H200 (bf16, docs/benchmarks.md):
    - training (checkpoints for a backward): "chunked".  The blocked backward lost everywhere (H100,
      2026-11-23: Vim-S layer fwd+bwd 1.8-2.0 vs 2.5 ms was its only win; L 4097 / 16384 9.2 vs 5.2 and
      16.3 vs 7.5 ms; N = 1 24.9 vs 2.1 ms).
    - inference on token-major inputs ((batch, L, dim) views, unit channel stride): "blocked" where it has
      enough parallel work (BLOCKED_MIN_WARPS), else "chunked" (2026-12-03, forward per call, blocked on
      token-major vs chunked on channel-major inputs: Vim-S 1248 px batch 8 0.83 vs 1.64 ms, 2048 px 2.17
      vs 4.63, Vim-S layer batch 64 0.41 vs 0.52; but 224 px batch 8 0.19 vs 0.14).
      On channel-major inputs its per-step loads do not coalesce: "chunked" (1248 px 1.73 vs 1.64 ms).
    - N = 1 (VMamba): "chunked" (the blocked forward is 1.19 vs 0.80 ms at stage 1 batch 64)."""
    if not (inference and token_major) or n == 1:
        return "chunked"
    cfg = blocked.default_config(batch, dim, length, n, groups_b, groups_c)
    programs = batch * triton.cdiv(dim, cfg.fwd_block_d)
    max_segs = triton.cdiv(length, 4 * cfg.chunk)
    return "blocked" if programs * max_segs >= BLOCKED_MIN_WARPS else "chunked"


def blocked_config(batch: int, dim: int, length: int, n: int, groups_b: int = 1,
                   groups_c: int = 1) -> blocked.BlockedConfig:
    """The blocked kernel's launch configuration for a shape (forward and backward must agree on it)."""
    return blocked.default_config(batch, dim, length, n, groups_b, groups_c)


def _resolve(kernel: str, u, A, B4, C4, inference: bool = False) -> str:
    if kernel == "auto":
        return choose_kernel(*u.shape, A.shape[1], B4.shape[1], C4.shape[1], inference=inference,
                             token_major=u.stride(1) == 1 and u.stride(2) != 1)
    if kernel not in KERNELS:
        raise ValueError(f"selective_scan_triton: kernel={kernel!r}, expected 'auto' or one of {KERNELS}")
    return kernel


def checkpoint_rows(u, A, B, C, kernel: str = "auto", store_checkpoints: bool = True) -> int:
    """The row count of `forward`'s checkpoints for these inputs, from shapes and strides only (what the
    custom op's fake implementation reports, so that compiled code knows the buffer's strides)."""
    B4, C4 = as_grouped(B), as_grouped(C)
    length = u.shape[-1]
    if _resolve(kernel, u, A, B4, C4, inference=not store_checkpoints) == "blocked":
        chunk = blocked_config(*u.shape, A.shape[1], B4.shape[1], C4.shape[1]).chunk
        return triton.cdiv(length, chunk) + 1 if store_checkpoints else 1
    # the chunked kernel keeps every row
    return triton.cdiv(length, _launch_config(length, A.shape[1], _forward_only(u, store_checkpoints))[0]) + 1


def forward(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, *, reverse=False,
            kernel="auto", store_checkpoints=True):
    """The forward half: (y, checkpoints).

    y: u's shape and dtype.  checkpoints: fp32 (batch, dim, rows, N), the last row the final state (the
    state after t = 0 when reverse); the other rows are what `backward` recomputes from (only the last
    row without store_checkpoints, for inference).  reverse=True scans t = L-1 .. 0, i.e. equals
    flipping every time axis in and y out.  kernel: "auto" (`choose_kernel`), "chunked" or "blocked";
    `backward` must get the same reverse and kernel.  No argument checks: `selective_scan` does them.
    """
    B4, C4 = as_grouped(B), as_grouped(C)
    # only a forward without checkpoints may pick a kernel for inference: `backward` resolves "auto"
    # for training and must meet the kernel that stored them
    name = _resolve(kernel, u, A, B4, C4, inference=not store_checkpoints)
    if name == "blocked":
        cfg = blocked_config(*u.shape, A.shape[1], B4.shape[1], C4.shape[1])
        return blocked.blocked_forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, reverse,
                                       store_checkpoints, cfg)
    return _chunked_forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, reverse, store_checkpoints)


def backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, checkpoints, delta_softplus=False, *,
             reverse=False, kernel="auto"):
    """The backward half: (du, ddelta, dA, dB, dC, dD, dz, ddelta_bias), each in its input's shape and
    dtype (None for an absent optional input), from the forward's inputs and checkpoints.
    dout: gradient of y (None: zero); dlast: gradient of the final state (None: zero)."""
    B4, C4 = as_grouped(B), as_grouped(C)
    name = _resolve(kernel, u, A, B4, C4)
    dout = torch.zeros_like(u) if dout is None else dout
    if name == "blocked":
        cfg = blocked_config(*u.shape, A.shape[1], B4.shape[1], C4.shape[1])
        grads = blocked.blocked_backward(dout, dlast, u, delta, A, B4, C4, D, z, delta_bias, checkpoints,
                                         delta_softplus, reverse, cfg)
    else:
        grads = _chunked_backward(dout, dlast, u, delta, A, B4, C4, D, z, delta_bias, checkpoints,
                                  delta_softplus, reverse)
    du, ddelta, dA, dB4, dC4, dD, dz, dbias = grads
    return (du, ddelta, dA.to(A.dtype), dB4.to(B.dtype).reshape(B.shape), dC4.to(C.dtype).reshape(C.shape),
            dD.to(D.dtype) if D is not None else None, dz,
            dbias.to(delta_bias.dtype) if delta_bias is not None else None)


class _SelectiveScanTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=False, kernel="auto", store=True):
        y, ckpt = forward(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse=reverse, kernel=kernel,
                          store_checkpoints=store)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, ckpt if store else None)
        ctx.options = dict(delta_softplus=delta_softplus, reverse=reverse, kernel=kernel)
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None, not zeros
        return y, ckpt[:, :, -1].clone()

    @staticmethod
    def backward(ctx, dout, dlast):
        u, delta, A, B, C, D, z, delta_bias, ckpt = ctx.saved_tensors
        opts = ctx.options
        grads = backward(dout, dlast, u, delta, A, B, C, D, z, delta_bias, ckpt, opts["delta_softplus"],
                         reverse=opts["reverse"], kernel=opts["kernel"])
        return (*grads, None, None, None, None)


def selective_scan_triton(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                          return_last_state=False, *, reverse=False, kernel="auto"):
    """The `triton` backend.  reverse=True scans from t = L-1 down to 0 (y and the inputs stay in their
    time order; the last state is the one after t = 0), i.e. it equals flipping every time axis in and
    y out, without the copies.  kernel: "auto", "chunked" or "blocked" (see `choose_kernel`)."""
    # checkpoints only where autograd will need them (ctx.needs_input_grad is True under no_grad too)
    store = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (u, delta, A, B, C, D, z, delta_bias))
    out, last = _SelectiveScanTriton.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, reverse, kernel, store)
    return (out, last) if return_last_state else out
