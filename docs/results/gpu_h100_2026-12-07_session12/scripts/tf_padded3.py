"""Fused Triton selective scan, forward and backward: the `triton` backend.

Two kernel designs, picked per shape by `choose_kernel` (or by name: kernel="chunked" / "blocked"):
- "blocked" (triton_blocked.py): a program owns a block of channels x all N states and walks time
  step by step, sharing each B/C load across the block; reads strided (time-major) inputs in place
  and walks backwards in time with reverse=True.
- "chunked" (this file, below): one program per channel, time in registers.

`forward(...) -> (y, checkpoints)` and `backward(...) -> grads` are the two halves as plain functions
(what an autograd.Function or a torch.library custom op wraps); `selective_scan_triton` is the
backend entry point.

The chunked kernel: one program owns one channel of one batch row and walks the sequence in chunks of `BLOCK_L` steps;
inside a chunk it loops over the N states, and for each the recurrence h_t = a_t h_{t-1} + x_t is a
1-D associative scan over (a, x) pairs held in registers (the layout mamba_ssm's CUDA kernel uses:
the whole chunk in flight, one state at a time).  A chunk's entering state comes from the checkpoint
buffer, which the forward fills as it goes: (batch, dim, n_chunks + 1, N) fp32, whose last row is the
final state.  Nothing of size (batch, dim, L, N) is ever stored.

Backward walks the chunks in reverse: it recomputes each state's scan from the checkpoint, runs the
adjoint recurrence g_t = C_t dy_t + a_{t+1} g_{t+1} as a reverse scan (its carry between chunks in a
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


@triton.jit
def _mem(t, L, REVERSE: tl.constexpr):
    """Memory index of logical step t: the kernels scan logical time 0..L-1, which is memory time
    L-1..0 when REVERSE (no flipped copies of the inputs or outputs)."""
    if REVERSE:
        return L - 1 - t
    else:
        return t


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
    out_ptr, ckpt_ptr,
    dim, L, n_chunks, d_per_group_B, d_per_group_C,
    su_b, su_d, sdt_b, sdt_d, sz_b, sz_d, sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t,
    N: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, UNROLL: tl.constexpr,
):
    pid = tl.program_id(0)                       # = batch * dim + channel
    b = pid // dim
    d = pid % dim
    offs = tl.arange(0, BLOCK_L)
    row = pid.to(tl.int64) * L                   # out: contiguous
    row_u = b.to(tl.int64) * su_b + d.to(tl.int64) * su_d
    row_dt = b.to(tl.int64) * sdt_b + d.to(tl.int64) * sdt_d
    row_z = b.to(tl.int64) * sz_b + d.to(tl.int64) * sz_d
    # B, C read through their strides (slices of the x projection's output need no copy)
    B_base = B_ptr + b.to(tl.int64) * sB_b + (d // d_per_group_B) * sB_g
    C_base = C_ptr + b.to(tl.int64) * sC_b + (d // d_per_group_C) * sC_g
    ckpt = ckpt_ptr + pid.to(tl.int64) * (n_chunks + 1) * N
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d).to(tl.float32)
    tl.store(ckpt + tl.arange(0, N), tl.zeros([N], tl.float32))
    tl.debug_barrier()
    for c in range(n_chunks):
        t = c * BLOCK_L + offs
        mask = t < L
        tm = _mem(t, L, REVERSE)
        dt, _ = _load_dt(delta_ptr, bias, row_dt + tm, mask, SOFTPLUS)
        u = tl.load(u_ptr + row_u + tm, mask=mask, other=0.0).to(tl.float32)
        dtu = dt * u
        y = tl.zeros([BLOCK_L], tl.float32)
        for n in tl.range(N, loop_unroll_factor=UNROLL):
            a2 = tl.load(A_ptr + d * N + n) * LOG2E
            Bn = tl.load(B_base + n * sB_n + tm * sB_t, mask=mask, other=0.0).to(tl.float32)
            Cn = tl.load(C_base + n * sC_n + tm * sC_t, mask=mask, other=0.0).to(tl.float32)
            cum, local = tl.associative_scan((tl.exp2(dt * a2), dtu * Bn), 0, _first_order)
            hs = local + cum * tl.load(ckpt + c * N + n)
            y += hs * Cn
            # padded steps keep the state, so the chunk's last row is the state after its last real step
            tl.store(ckpt + (c + 1) * N + n + offs * 0, hs, mask=offs == BLOCK_L - 1)
        tl.debug_barrier()                        # the next chunk reads the states stored above
        if HAS_D:
            y += u * tl.load(D_ptr + d).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_ptr + row_z + tm, mask=mask, other=0.0).to(tl.float32)
            y = y * zt * tl.sigmoid(zt)
        tl.store(out_ptr + row + tm, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, dout_ptr,
    gcarry_ptr, du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr,
    dim, L, L_out, n_chunks, d_per_group_B, d_per_group_C, G_B, G_C,
    su_b, su_d, sdt_b, sdt_d, sz_b, sz_d, sdy_b, sdy_d, sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t,
    N: tl.constexpr, BLOCK_L: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr,
):
    pid = tl.program_id(0)
    b = pid // dim
    d = pid % dim
    offs = tl.arange(0, BLOCK_L)
    row = pid.to(tl.int64) * L                   # du, ddelta, dz: contiguous
    row_u = b.to(tl.int64) * su_b + d.to(tl.int64) * su_d
    row_dt = b.to(tl.int64) * sdt_b + d.to(tl.int64) * sdt_d
    row_z = b.to(tl.int64) * sz_b + d.to(tl.int64) * sz_d
    row_dy = b.to(tl.int64) * sdy_b + d.to(tl.int64) * sdy_d
    group_B = (b * G_B + d // d_per_group_B).to(tl.int64) * N * L_out    # dB, dC: fp32, rows of L_out
    group_C = (b * G_C + d // d_per_group_C).to(tl.int64) * N * L_out
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
    for ci in range(n_chunks):
        c = n_chunks - 1 - ci
        t = c * BLOCK_L + offs
        mask = t < L
        io = t < L_out                            # loads and stores: constant over 16-step groups
        tm = _mem(t, L, REVERSE)
        tm0 = _mem(t - 1, L, REVERSE)            # logical step t - 1 (masked before the chunk)
        raw = tl.load(delta_ptr + row_dt + tm, mask=mask, other=0.0).to(tl.float32) + bias
        dt = raw
        if SOFTPLUS:
            dt = _softplus(raw)
        dt = tl.where(mask, dt, 0.0)
        # dt of logical steps t + 1 and t - 1 by warp shuffles of this chunk's dt (not reloaded, and their
        # softplus not recomputed); past the chunk's last step, the next chunk's first (the previous
        # iteration's), 0 past the end (a_{t+1} = 1)
        dt1 = tl.where(offs == BLOCK_L - 1, dt_next, tl.gather(dt, tl.minimum(offs + 1, BLOCK_L - 1), 0))
        u = tl.load(u_ptr + row_u + tm, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dout_ptr + row_dy + tm, mask=mask, other=0.0).to(tl.float32)
        dy_out = dy
        if HAS_Z:
            zt = tl.load(z_ptr + row_z + tm, mask=mask, other=0.0).to(tl.float32)
            sig = tl.sigmoid(zt)
            dy = dy * zt * sig
        dtu = dt * u
        du = dy * Dv
        ddt = tl.zeros([BLOCK_L], tl.float32)
        ypre = u * Dv                             # y before the gate, re-formed from the states below
        # the previous step's inputs, for h_{t-1}: an exclusive scan, its inputs one step back (dt, dt u
        # shuffled, B reloaded); the chunk's first step gets the identity (1, 0) and starts from the checkpoint
        prev = offs > 0
        dt0 = tl.where(prev, tl.gather(dt, tl.maximum(offs - 1, 0), 0), 0.0)
        dtu0 = tl.where(prev, tl.gather(dtu, tl.maximum(offs - 1, 0), 0), 0.0)
        for n in range(N):
            a = tl.load(A_ptr + d * N + n)
            a2 = a * LOG2E
            Bn = tl.load(B_base + n * sB_n + tm * sB_t, mask=io, other=0.0).to(tl.float32)
            Cn = tl.load(C_base + n * sC_n + tm * sC_t, mask=io, other=0.0).to(tl.float32)
            B0 = tl.load(B_base + n * sB_n + tm0 * sB_t, mask=prev & (t - 1 < L_out), other=0.0).to(tl.float32)
            cum, local = tl.associative_scan((tl.exp2(dt0 * a2), dtu0 * B0), 0, _first_order)
            h_prev = local + cum * tl.load(ckpt + c * N + n)
            # a_t h_{t-1} formed as a product: h_t - x_t would cancel where the decay is small
            carried = tl.exp2(dt * a2) * h_prev
            hs = carried + dtu * Bn
            cum_r, g_local = tl.associative_scan((tl.exp2(dt1 * a2), Cn * dy), 0, _first_order, reverse=True)
            g = g_local + cum_r * tl.load(gcarry + n)
            tl.store(gcarry + n + offs * 0, g, mask=offs == 0)
            ypre += hs * Cn
            ddt += g * (a * carried + Bn * u)
            du += g * Bn * dt
            dA_acc += tl.where(offs_n == n, tl.sum(g * dt * carried, axis=0), 0.0)
            tl.atomic_add(dB_ptr + group_B + n * L_out + tm, g * dtu, mask=io, sem="relaxed")
            tl.atomic_add(dC_ptr + group_C + n * L_out + tm, hs * dy, mask=io, sem="relaxed")
        tl.debug_barrier()                        # the previous chunk reads the carries stored above
        if HAS_Z:
            tl.store(dz_ptr + row + tm, (dy_out * ypre * sig * (1.0 + zt * (1.0 - sig))).to(dz_ptr.dtype.element_ty),
                     mask=mask)
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(raw)
        ddt = tl.where(mask, ddt, 0.0)
        dbias_acc += tl.sum(ddt, axis=0)
        dD_acc += tl.sum(dy * u, axis=0)
        tl.store(du_ptr + row + tm, du.to(du_ptr.dtype.element_ty), mask=mask)
        tl.store(ddelta_ptr + row + tm, ddt.to(ddelta_ptr.dtype.element_ty), mask=mask)
        dt_next = tl.sum(tl.where(offs == 0, dt, 0.0), axis=0)
    tl.store(dA_row + offs_n, dA_acc)
    if HAS_D:
        tl.store(dD_ptr + pid, dD_acc)
    if HAS_BIAS:
        tl.store(dbias_ptr + pid, dbias_acc)


def _launch_config(length: int, n: int) -> tuple[int, int]:
    """(BLOCK_L, num_warps) of the chunked kernel for sequence length `length` and state size `n`.  One warp
    per program: the scans and sums of a chunk then need no barrier between warps, and many programs share
    an SM.  A 256-step chunk pays off only for long sequences, a 64-step one for N = 1 at L <= 256 (VMamba's
    third stage, L = 196: backward 1.39 vs 1.50 ms, forward equal; at N = 16 it is slower, forward 0.49
    vs 0.38 ms at L = 197) (H100 sweeps, docs/benchmarks.md)."""
    block_l = 256 if length > 8192 else 64 if n == 1 and length <= 256 else 128
    return min(block_l, max(32, triton.next_power_of_2(length))), 1


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


def _chunked_forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, reverse=False):
    batch, dim, length = u.shape
    n = A.shape[1]
    block_l, num_warps = _launch_config(length, n)
    n_chunks = triton.cdiv(length, block_l)
    (u, *su), (delta, *sdt), (z, *sz) = _rows(u), _rows(delta), _rows(z)
    A = A.contiguous()
    D, delta_bias = (t.contiguous() if t is not None else None for t in (D, delta_bias))
    out = torch.empty(batch, dim, length, device=u.device, dtype=u.dtype)
    ckpt = torch.empty(batch, dim, n_chunks + 1, n, device=u.device, dtype=torch.float32)
    gb, gc = B4.shape[1], C4.shape[1]
    _fwd_kernel[(batch * dim,)](
        u, delta, A, B4, C4, D, z, delta_bias, out, ckpt, dim, length, n_chunks, dim // gb, dim // gc,
        *su, *sdt, *sz, *B4.stride(), *C4.stride(),
        N=n, BLOCK_L=block_l, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse), UNROLL=_fwd_unroll(u.dtype, n), num_warps=num_warps)
    return out, ckpt


ROW_ALIGN = 16   # elements: Triton specialises integers divisible by 16, so such row strides prove alignment


def aligned_rows(length: int, reverse: bool) -> int:
    """The row length the chunked backward runs its time rows at: `length` rounded up to ROW_ALIGN for a
    forward-time scan, else `length`.  Rows whose starts the compiler can prove 16-byte aligned get the
    layout with consecutive steps in each thread (vector loads, one warp scan a state): at Vim-S's layer
    shape the backward took 1.14 ms at L = 192 against 1.46 at L = 197, the same two chunks (H100, bf16,
    docs/benchmarks.md, session 12).  A reversed scan walks memory downwards and gets no vector loads."""
    if reverse or length % ROW_ALIGN == 0:
        return length
    return triton.cdiv(length, ROW_ALIGN) * ROW_ALIGN


def _padded(t, row: int):
    """t (..., L) as a view of the first L columns of a fresh (..., row) buffer (t itself when row == L)."""
    if t is None or row == t.shape[-1]:
        return t
    # zeros past L: the kernel loads whole 16-step groups there (u, dy, z, B, C = 0 add nothing; dt is masked)
    return torch.nn.functional.pad(t, (0, row - t.shape[-1]))[..., :t.shape[-1]]


def _chunked_backward(dout, dlast, u, delta, A, B4, C4, D, z, delta_bias, ckpt, delta_softplus, reverse=False):
    batch, dim, length = u.shape
    n = A.shape[1]
    block_l, num_warps = _launch_config(length, n)
    n_chunks = triton.cdiv(length, block_l)
    row = aligned_rows(length, reverse)
    # B and C (batch x N x L each, small) copied into aligned rows, dB / dC accumulated in aligned rows and
    # returned as views: the state loop's loads and atomics then run 4 steps a thread (the activations, read and
    # written once a chunk, stay as they are)
    B4, C4 = _padded(B4, row), _padded(C4, row)
    (u, *su), (delta, *sdt), (z, *sz), (dout, *sdy) = _rows(u), _rows(delta), _rows(z), _rows(dout)
    A = A.contiguous()
    D, delta_bias = (t.contiguous() if t is not None else None for t in (D, delta_bias))
    f32 = dict(device=u.device, dtype=torch.float32)
    gcarry = dlast.float().contiguous().clone() if dlast is not None else torch.zeros(batch, dim, n, **f32)
    du = torch.empty(batch, dim, length, device=u.device, dtype=u.dtype)
    ddelta = torch.empty(batch, dim, length, device=u.device, dtype=delta.dtype)
    dz = torch.empty(batch, dim, length, device=u.device, dtype=z.dtype) if z is not None else None
    dB, dC = torch.zeros(*B4.shape[:-1], row, **f32), torch.zeros(*C4.shape[:-1], row, **f32)
    dA = torch.empty(batch, dim, n, **f32)
    dD = torch.empty(batch, dim, **f32) if D is not None else None
    dbias = torch.empty(batch, dim, **f32) if delta_bias is not None else None
    gb, gc = B4.shape[1], C4.shape[1]
    _bwd_kernel[(batch * dim,)](
        u, delta, A, B4, C4, D, z, delta_bias, ckpt, dout, gcarry, du, ddelta, dz, dB, dC, dA, dD, dbias,
        dim, length, row, n_chunks, dim // gb, dim // gc, gb, gc, *su, *sdt, *sz, *sdy, *B4.stride(), *C4.stride(),
        N=n, BLOCK_L=block_l, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse), num_warps=num_warps)
    dB, dC = dB[..., :length], dC[..., :length]
    return (du, ddelta, dA.sum(0), dB, dC, dD.sum(0) if D is not None else None,
            dz, dbias.sum(0) if delta_bias is not None else None)


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
    return triton.cdiv(length, _launch_config(length, A.shape[1])[0]) + 1      # the chunked kernel keeps every row


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
    return _chunked_forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus, reverse)


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
