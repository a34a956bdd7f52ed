"""Blocked Triton selective scan: a program owns BLOCK_D channels x all N states and walks time step by step.

The state tile h (BLOCK_D, N) stays in registers in fp32; each step loads one time step of u, delta
(and z) for the block's channels and one column of B and C (N values shared by every channel of the
block: one load where the chunked kernel of `triton_fused` makes one per channel), and updates

    h = exp2(dt * A log2(e)) * h + dt u B ;   y = <h, C> + D u ;   y *= silu(z)

with A pre-scaled by log2(e) so the one transcendental per state update is exp2.  Inputs are read
through their strides, so the time-major layouts Vim's projections produce ((batch, L, dim) viewed
as (batch, dim, L)) need no copy, and `reverse=True` walks t = L-1 .. 0 (Vim's backward direction
without flipping anything).

The forward's tile is the transpose, (N, BLOCK_D), with A2 loaded along the channels. It was written for
one channel with all its N states per thread, but that is not what Triton 3.6 builds at run time (ttgir
of the H200 runs, 2026-12-03): A2's 16-byte-aligned, channel-contiguous load is vectorised, and the tile
follows it, so each thread holds 4 adjacent channels x 4 of their states (sizePerThread [1, 4],
threadsPerWarp [4, 8]): <h, C> ends in 2 shuffle steps, and dt and u, computed one channel per lane, are
redistributed through shared memory every step. (The intended layout appears only where the compiler
cannot prove that alignment, as in the SASS counts of session 6, which were therefore not of the kernel
that ran; forced that way it is no better: 275 + 173 sm_90 instructions per step for the main and
segment loops vs 249 + 165, docs/benchmarks.md, session 7.) Its loads run two steps ahead of their use
(a software pipeline through loop-carried registers). It is the kernel for token-major inference, where
a step's loads of u, dt, z and its store of y are contiguous across the warp; on channel-major inputs
they are not, and the chunked kernel is faster (see `triton_fused.choose_kernel`).

Parallel over the sequence: L is cut into `n_segs` segments of whole checkpoint chunks.  A first
launch walks every segment but the last from a zero state, keeping only its end state and the sum of
its dt (the segment's decay is exp2(A2 * sum dt), so no product needs storing); the main launch then
folds the segments before its own into its entering state (a loop over <= n_segs small tiles) and
produces y.  With one segment the first launch is skipped.

Backward, per chunk of CHUNK steps and in reverse: the states of the chunk are recomputed from the
forward's checkpoint into a per-program scratch tile of (CHUNK + 1, BLOCK_D, N) fp32 (L1/L2-resident,
never (batch, dim, L, N)), then a reverse walk runs the adjoint g_t = C_t dy_t + a_{t+1} g_{t+1},
reading h_{t-1} back so that a_t h_{t-1} is a product (h_t - x_t would cancel where the decay is
strong).  The adjoint entering a segment from the right is folded from per-segment carries computed
by a first launch, like the forward's states.  dB and dC sum over channels: each program reduces its
block and adds it with relaxed fp32 atomics; dA, dD and d(delta_bias) are per-(batch, segment)
partial sums reduced by the caller.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ._common import is_dense
from ._triton_common import LOG2E, softplus


@triton.jit
def _discretize(delta_row, t, sd_t, bias, mask_d, SOFTPLUS: tl.constexpr):
    """(dt, raw): dt in fp32 for the block's channels at time t, and its pre-softplus value."""
    raw = tl.load(delta_row + t * sd_t, mask=mask_d, other=0.0).to(tl.float32) + bias
    return _dt(raw, SOFTPLUS), raw


@triton.jit
def _time(i, L, REVERSE: tl.constexpr):
    """Memory index of scan step i."""
    if REVERSE:
        return L - 1 - i
    return i


@triton.jit
def _fwd_tile(A2_ptr, bias_ptr, dim, n_dblocks, N: tl.constexpr, BLOCK_D: tl.constexpr, HAS_BIAS: tl.constexpr):
    """The forward's program tile, transposed to (N, BLOCK_D) (see the module docstring for the layout the
    compiler gives it)."""
    pid = tl.program_id(0)
    b = (pid // n_dblocks).to(tl.int64)
    d0 = (pid % n_dblocks) * BLOCK_D
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N)
    mask_d = offs_d < dim
    mask_nd = (offs_n[:, None] < N) & mask_d[None, :]
    # A2 comes transposed, (N, dim): the tile's layout follows this load (an N-contiguous load spread the
    # states over 16 lanes: 64 shuffles per step)
    A2 = tl.load(A2_ptr + offs_n[:, None] * dim + offs_d[None, :], mask=mask_nd, other=0.0)
    bias = tl.zeros([BLOCK_D], tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    return pid, b, d0, offs_d, offs_n, mask_d, mask_nd, A2, bias


@triton.jit
def _ld(ptr, mask, EVEN: tl.constexpr):
    if EVEN:
        return tl.load(ptr)
    return tl.load(ptr, mask=mask, other=0.0)


@triton.jit
def _fwd_inputs(i, i_end, L, delta_row, sd_t, u_row, su_t, z_row, sz_t, B_ptr, B_off, sB_t, sB_n, C_ptr, C_off,
                sC_t, sC_n, mask_d, N: tl.constexpr, HAS_Z: tl.constexpr, HAS_C: tl.constexpr, REVERSE: tl.constexpr,
                EVEN_D: tl.constexpr):
    """Scan step i's raw inputs (storage dtype): what the pipelined loops load steps ahead of their use,
    so that the loads' latency overlaps the state updates.  Past i_end they read step i_end - 1 again
    (in bounds, never used): no per-step masks."""
    t = _time(tl.minimum(i, i_end - 1), L, REVERSE)
    raw = _ld(delta_row + t * sd_t, mask_d, EVEN_D)
    uv = _ld(u_row + t * su_t, mask_d, EVEN_D)
    zt = uv
    if HAS_Z:
        zt = _ld(z_row + t * sz_t, mask_d, EVEN_D)
    Bt = tl.load(B_ptr + B_off + t * sB_t + tl.arange(0, N) * sB_n)
    Ct = Bt
    if HAS_C:
        Ct = tl.load(C_ptr + C_off + t * sC_t + tl.arange(0, N) * sC_n)
    return raw, uv, zt, Bt, Ct


@triton.jit
def _dt(pre, SOFTPLUS: tl.constexpr):
    """dt from its pre-softplus value (delta + delta_bias, fp32)."""
    if SOFTPLUS:
        return softplus(pre)
    return pre


@triton.jit
def _fwd_segment_states_kernel(
    u_ptr, delta_ptr, A2_ptr, B_ptr, bias_ptr, seg_h_ptr, seg_dt_ptr,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sB_b, sB_g, sB_n, sB_t,
    dim, L, n_dblocks, seg_steps, n_segs, dpg_B,
    N: tl.constexpr, BLOCK_D: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, EVEN_D: tl.constexpr,
):
    pid, b, d0, offs_d, offs_n, mask_d, mask_nd, A2, bias = _fwd_tile(A2_ptr, bias_ptr, dim, n_dblocks, N, BLOCK_D,
                                                                       HAS_BIAS)
    seg = tl.program_id(1)          # the last segment's end state is never needed: not launched
    u_row = u_ptr + b * su_b + offs_d * su_d
    delta_row = delta_ptr + b * sd_b + offs_d * sd_d
    B_off = b * sB_b + (d0 // dpg_B) * sB_g
    h = tl.zeros([N, BLOCK_D], tl.float32)
    dt_sum = tl.zeros([BLOCK_D], tl.float32)
    i0 = seg * seg_steps
    i1 = tl.minimum(i0 + seg_steps, L)
    # software pipeline: step i + 2's loads are issued before step i's update (no C, z here)
    raw, uv, _, Bt, _ = _fwd_inputs(i0, i1, L, delta_row, sd_t, u_row, su_t, u_row, su_t, B_ptr, B_off, sB_t, sB_n,
                                    B_ptr, B_off, sB_t, sB_n, mask_d, N, False, False, REVERSE, EVEN_D)
    raw1, uv1, _, Bt1, _ = _fwd_inputs(i0 + 1, i1, L, delta_row, sd_t, u_row, su_t, u_row, su_t, B_ptr, B_off, sB_t,
                                       sB_n, B_ptr, B_off, sB_t, sB_n, mask_d, N, False, False, REVERSE, EVEN_D)
    for i in range(i0, i1):
        raw2, uv2, _, Bt2, _ = _fwd_inputs(i + 2, i1, L, delta_row, sd_t, u_row, su_t, u_row, su_t, B_ptr, B_off, sB_t,
                                           sB_n, B_ptr, B_off, sB_t, sB_n, mask_d, N, False, False, REVERSE, EVEN_D)
        dt = _dt(raw.to(tl.float32) + bias, SOFTPLUS)
        h = tl.exp2(A2 * dt[None, :]) * h + (dt * uv.to(tl.float32))[None, :] * Bt.to(tl.float32)[:, None]
        dt_sum += dt
        raw, uv, Bt = raw1, uv1, Bt1
        raw1, uv1, Bt1 = raw2, uv2, Bt2
    slot = (pid.to(tl.int64) * n_segs + seg) * BLOCK_D + tl.arange(0, BLOCK_D)
    tl.store(_seg_tile(seg_h_ptr, pid, seg, n_segs, offs_n, BLOCK_D), h)
    tl.store(seg_dt_ptr + slot, dt_sum)


@triton.jit
def _seg_tile(seg_h_ptr, pid, seg, n_segs, offs_n, BLOCK_D: tl.constexpr):
    """(N, BLOCK_D) pointers of a segment's end state in seg_h, (programs, n_segs, N, BLOCK_D)."""
    base = (pid.to(tl.int64) * n_segs + seg) * offs_n.shape[0] * BLOCK_D
    return seg_h_ptr + base + offs_n[:, None] * BLOCK_D + tl.arange(0, BLOCK_D)[None, :]


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, A2_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, out_ptr, ckpt_ptr, seg_h_ptr, seg_dt_ptr,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, so_b, so_d, so_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t,
    dim, L, n_dblocks, chunks_per_seg, n_chunks, n_segs, n_rows, dpg_B, dpg_C,
    N: tl.constexpr, BLOCK_D: tl.constexpr, CHUNK: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr, STORE_CKPT: tl.constexpr, EVEN_D: tl.constexpr,
):
    pid, b, d0, offs_d, offs_n, mask_d, mask_nd, A2, bias = _fwd_tile(A2_ptr, bias_ptr, dim, n_dblocks, N, BLOCK_D,
                                                                       HAS_BIAS)
    seg = tl.program_id(1)
    Dv = tl.zeros([BLOCK_D], tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    u_row = u_ptr + b * su_b + offs_d * su_d
    out_row = out_ptr + b * so_b + offs_d * so_d
    delta_row = delta_ptr + b * sd_b + offs_d * sd_d
    z_row = z_ptr + b * sz_b + offs_d * sz_d
    B_off = b * sB_b + (d0 // dpg_B) * sB_g
    C_off = b * sC_b + (d0 // dpg_C) * sC_g
    # checkpoint row r of channel d: ckpt[b, d, r, :]
    ckpt = ckpt_ptr + ((b * dim + offs_d) * n_rows)[None, :] * N + offs_n[:, None]
    # (z_ptr is a stand-in tensor when HAS_Z is off: the row pointer is formed, never read)

    h = tl.zeros([N, BLOCK_D], tl.float32)
    for s in range(seg):            # fold the end states of the segments before this one
        slot = (pid.to(tl.int64) * n_segs + s) * BLOCK_D + tl.arange(0, BLOCK_D)
        dt_sum = tl.load(seg_dt_ptr + slot)
        h = tl.exp2(A2 * dt_sum[None, :]) * h + tl.load(_seg_tile(seg_h_ptr, pid, s, n_segs, offs_n, BLOCK_D))
    i0 = seg * chunks_per_seg * CHUNK
    i1 = tl.minimum(i0 + chunks_per_seg * CHUNK, L)
    if STORE_CKPT:
        if seg == 0:                # later segments' first rows are the end rows of the segment before
            tl.store(ckpt, h, mask=mask_nd)
    # software pipeline: step i + 2's loads are issued before step i's update
    raw, uv, zt, Bt, Ct = _fwd_inputs(i0, i1, L, delta_row, sd_t, u_row, su_t, z_row, sz_t, B_ptr, B_off, sB_t, sB_n,
                                      C_ptr, C_off, sC_t, sC_n, mask_d, N, HAS_Z, True, REVERSE, EVEN_D)
    raw1, uv1, zt1, Bt1, Ct1 = _fwd_inputs(i0 + 1, i1, L, delta_row, sd_t, u_row, su_t, z_row, sz_t, B_ptr, B_off,
                                           sB_t, sB_n, C_ptr, C_off, sC_t, sC_n, mask_d, N, HAS_Z, True, REVERSE,
                                           EVEN_D)
    for i in range(i0, i1):
        raw2, uv2, zt2, Bt2, Ct2 = _fwd_inputs(i + 2, i1, L, delta_row, sd_t, u_row, su_t, z_row, sz_t, B_ptr, B_off,
                                               sB_t, sB_n, C_ptr, C_off, sC_t, sC_n, mask_d, N, HAS_Z, True, REVERSE,
                                               EVEN_D)
        dt = _dt(raw.to(tl.float32) + bias, SOFTPLUS)
        u32 = uv.to(tl.float32)
        h = tl.exp2(A2 * dt[None, :]) * h + (dt * u32)[None, :] * Bt.to(tl.float32)[:, None]
        y = tl.sum(h * Ct.to(tl.float32)[:, None], axis=0) + Dv * u32
        if HAS_Z:
            z32 = zt.to(tl.float32)
            y = y * z32 * tl.sigmoid(z32)
        y = y.to(out_ptr.dtype.element_ty)
        if EVEN_D:
            tl.store(out_row + _time(i, L, REVERSE) * so_t, y)
        else:
            tl.store(out_row + _time(i, L, REVERSE) * so_t, y, mask=mask_d)
        if STORE_CKPT:
            if ((i + 1) % CHUNK == 0) | (i + 1 == L):
                tl.store(ckpt + ((i + CHUNK) // CHUNK) * N, h, mask=mask_nd)
        raw, uv, zt, Bt, Ct = raw1, uv1, zt1, Bt1, Ct1
        raw1, uv1, zt1, Bt1, Ct1 = raw2, uv2, zt2, Bt2, Ct2
    if not STORE_CKPT:              # inference: only the final state (row 0 of a 1-row buffer)
        if seg == n_segs - 1:
            tl.store(ckpt, h, mask=mask_nd)


@triton.jit
def _bwd_segment_carries_kernel(
    delta_ptr, A2_ptr, C_ptr, z_ptr, bias_ptr, dout_ptr, seg_g_ptr, seg_dt_ptr,
    sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, so_b, so_d, so_t, sC_b, sC_g, sC_n, sC_t,
    dim, L, n_dblocks, seg_steps, n_segs, dpg_C,
    N: tl.constexpr, BLOCK_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
    SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr,
):
    pid = tl.program_id(0)
    seg = tl.program_id(1) + 1      # the first segment's carry is never needed: not launched
    b = (pid // n_dblocks).to(tl.int64)
    d0 = (pid % n_dblocks) * BLOCK_D
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N)
    mask_d = offs_d < dim
    A2 = tl.load(A2_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_d[:, None], other=0.0)
    bias = tl.zeros([BLOCK_D], tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    delta_row = delta_ptr + b * sd_b + offs_d * sd_d
    z_row = z_ptr + b * sz_b + offs_d * sz_d
    dout_row = dout_ptr + b * so_b + offs_d * so_d
    C_col = C_ptr + b * sC_b + (d0 // dpg_C) * sC_g + offs_n * sC_n
    # ga = a_i g_i: the adjoint handed to step i - 1, from a zero carry at the segment's end
    ga = tl.zeros([BLOCK_D, N], tl.float32)
    dt_sum = tl.zeros([BLOCK_D], tl.float32)
    i0 = seg * seg_steps
    i1 = tl.minimum(i0 + seg_steps, L)
    for ii in range(i1 - i0):
        t = _time(i1 - 1 - ii, L, REVERSE)
        dt, _ = _discretize(delta_row, t, sd_t, bias, mask_d, SOFTPLUS)
        dy = tl.load(dout_row + t * so_t, mask=mask_d, other=0.0).to(tl.float32)
        if HAS_Z:
            zt = tl.load(z_row + t * sz_t, mask=mask_d, other=0.0).to(tl.float32)
            dy = dy * zt * tl.sigmoid(zt)
        Ct = tl.load(C_col + t * sC_t).to(tl.float32)
        ga = tl.exp2(A2 * dt[:, None]) * (ga + Ct[None, :] * dy[:, None])
        dt_sum += dt
    slot = (pid.to(tl.int64) * n_segs + seg) * BLOCK_D + tl.arange(0, BLOCK_D)
    tl.store(seg_g_ptr + slot[:, None] * N + offs_n[None, :], ga)
    tl.store(seg_dt_ptr + slot, dt_sum)


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, A2_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, dlast_ptr, ckpt_ptr,
    seg_g_ptr, seg_dt_ptr, scratch_ptr,
    du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr,
    su_b, su_d, su_t, sd_b, sd_d, sd_t, sz_b, sz_d, sz_t, so_b, so_d, so_t,
    sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t,
    dim, L, n_dblocks, chunks_per_seg, n_chunks, n_segs, dpg_B, dpg_C, G_B, G_C,
    N: tl.constexpr, BLOCK_D: tl.constexpr, CHUNK: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_DLAST: tl.constexpr,
    SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr,
):
    LN2: tl.constexpr = 0.6931471805599453
    pid = tl.program_id(0)
    seg = tl.program_id(1)
    b = (pid // n_dblocks).to(tl.int64)
    d0 = (pid % n_dblocks) * BLOCK_D
    offs_d = d0 + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, N)
    mask_d = offs_d < dim
    mask_dn = mask_d[:, None] & (offs_n[None, :] < N)
    A2 = tl.load(A2_ptr + offs_d[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
    A = A2 * LN2
    bias = tl.zeros([BLOCK_D], tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    Dv = tl.zeros([BLOCK_D], tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    u_row = u_ptr + b * su_b + offs_d * su_d
    du_row = du_ptr + b * su_b + offs_d * su_d
    delta_row = delta_ptr + b * sd_b + offs_d * sd_d
    ddelta_row = ddelta_ptr + b * sd_b + offs_d * sd_d
    z_row = z_ptr + b * sz_b + offs_d * sz_d
    dz_row = dz_ptr + b * sz_b + offs_d * sz_d
    dout_row = dout_ptr + b * so_b + offs_d * so_d
    gB = d0 // dpg_B
    gC = d0 // dpg_C
    B_col = B_ptr + b * sB_b + gB * sB_g + offs_n * sB_n
    C_col = C_ptr + b * sC_b + gC * sC_g + offs_n * sC_n
    dB_col = dB_ptr + ((b * G_B + gB) * N + offs_n) * L      # fp32, contiguous (batch, G, N, L)
    dC_col = dC_ptr + ((b * G_C + gC) * N + offs_n) * L
    ckpt = ckpt_ptr + ((b * dim + offs_d) * (n_chunks + 1))[:, None] * N + offs_n[None, :]
    tile = tl.arange(0, BLOCK_D)[:, None] * N + offs_n[None, :]
    scratch = scratch_ptr + (pid.to(tl.int64) * n_segs + seg) * (CHUNK + 1) * BLOCK_D * N + tile

    # the adjoint entering this segment from the right: dlast folded through the later segments
    ga = tl.zeros([BLOCK_D, N], tl.float32)
    if HAS_DLAST:
        ga = tl.load(dlast_ptr + (b * dim + offs_d)[:, None] * N + offs_n[None, :], mask=mask_dn, other=0.0)
    for ss in range(n_segs - 1 - seg):
        slot = (pid.to(tl.int64) * n_segs + n_segs - 1 - ss) * BLOCK_D + tl.arange(0, BLOCK_D)
        dt_sum = tl.load(seg_dt_ptr + slot)
        ga = tl.exp2(A2 * dt_sum[:, None]) * ga + tl.load(seg_g_ptr + slot[:, None] * N + offs_n[None, :])

    dA_acc = tl.zeros([BLOCK_D, N], tl.float32)
    dD_acc = tl.zeros([BLOCK_D], tl.float32)
    dbias_acc = tl.zeros([BLOCK_D], tl.float32)
    k0 = seg * chunks_per_seg
    k1 = tl.minimum(k0 + chunks_per_seg, n_chunks)
    for kk in range(k1 - k0):
        k = k1 - 1 - kk
        steps = tl.minimum(CHUNK, L - k * CHUNK)
        # recompute the chunk's states into the scratch tile: slot j holds h after j steps
        h = tl.load(ckpt + k * N, mask=mask_dn, other=0.0)
        tl.store(scratch, h)
        for j in range(steps):
            t = _time(k * CHUNK + j, L, REVERSE)
            dt, _ = _discretize(delta_row, t, sd_t, bias, mask_d, SOFTPLUS)
            uv = tl.load(u_row + t * su_t, mask=mask_d, other=0.0).to(tl.float32)
            Bt = tl.load(B_col + t * sB_t).to(tl.float32)
            h = tl.exp2(A2 * dt[:, None]) * h + (dt * uv)[:, None] * Bt[None, :]
            tl.store(scratch + (j + 1) * (BLOCK_D * N), h)
        tl.debug_barrier()
        h_cur = h
        for jj in range(steps):
            j = steps - 1 - jj
            t = _time(k * CHUNK + j, L, REVERSE)
            h_prev = tl.load(scratch + j * (BLOCK_D * N))
            dt, raw = _discretize(delta_row, t, sd_t, bias, mask_d, SOFTPLUS)
            uv = tl.load(u_row + t * su_t, mask=mask_d, other=0.0).to(tl.float32)
            Bt = tl.load(B_col + t * sB_t).to(tl.float32)
            Ct = tl.load(C_col + t * sC_t).to(tl.float32)
            dy = tl.load(dout_row + t * so_t, mask=mask_d, other=0.0).to(tl.float32)
            if HAS_Z:
                zt = tl.load(z_row + t * sz_t, mask=mask_d, other=0.0).to(tl.float32)
                sig = tl.sigmoid(zt)
                ypre = tl.sum(h_cur * Ct[None, :], axis=1) + Dv * uv
                tl.store(dz_row + t * sz_t, (dy * ypre * sig * (1.0 + zt * (1.0 - sig))).to(dz_ptr.dtype.element_ty),
                         mask=mask_d)
                dy = dy * zt * sig
            g = ga + Ct[None, :] * dy[:, None]
            a = tl.exp2(A2 * dt[:, None])
            carried = a * h_prev
            gB_sum = tl.sum(g * Bt[None, :], axis=1)
            ddt = tl.sum(g * A * carried, axis=1) + gB_sum * uv
            dA_acc += g * carried * dt[:, None]
            tl.atomic_add(dB_col + t, tl.sum(g * (dt * uv)[:, None], axis=0), sem="relaxed")
            tl.atomic_add(dC_col + t, tl.sum(h_cur * dy[:, None], axis=0), sem="relaxed")
            if SOFTPLUS:
                ddt = ddt * tl.sigmoid(raw)
            ddt = tl.where(mask_d, ddt, 0.0)
            dbias_acc += ddt
            dD_acc += dy * uv
            tl.store(du_row + t * su_t, (gB_sum * dt + Dv * dy).to(du_ptr.dtype.element_ty), mask=mask_d)
            tl.store(ddelta_row + t * sd_t, ddt.to(ddelta_ptr.dtype.element_ty), mask=mask_d)
            ga = a * g
            h_cur = h_prev
        tl.debug_barrier()          # the next chunk overwrites the scratch tile read above
    part = ((b * n_segs + seg) * dim + offs_d)      # (batch, n_segs, dim) partial sums
    tl.store(dA_ptr + part[:, None] * N + offs_n[None, :], dA_acc, mask=mask_dn)
    if HAS_D:
        tl.store(dD_ptr + part, dD_acc, mask=mask_d)
    if HAS_BIAS:
        tl.store(dbias_ptr + part, dbias_acc, mask=mask_d)


# ----------------------------------------------------------------------------------------- launches


@dataclass(frozen=True)
class BlockedConfig:
    """block_d: channels per program (must divide dim // G when G > 1, so a block reads one group's
    B/C); chunk: steps between checkpoints (and the backward's scratch depth); n_segs / n_segs_bwd:
    sequence segments run in parallel by the forward / backward; num_warps: warps per backward program;
    fwd_block_d / fwd_warps: channels and warps per forward program; fwd_block_d is narrowed where a B/C
    group has fewer channels.  (The forward's time loops are not unrolled: 3x unrolled was no faster on an
    H200, 2026-12-03, bf16, batch 8, bench_kernels --layout token-major: 1.16 ms per call at Vim-S 1248 px
    vs 1.17.)"""
    block_d: int
    chunk: int
    n_segs: int
    n_segs_bwd: int
    num_warps: int
    fwd_block_d: int = 32
    fwd_warps: int = 1

    def __post_init__(self):
        for name in ("block_d", "chunk", "n_segs", "n_segs_bwd", "num_warps", "fwd_block_d", "fwd_warps"):
            if getattr(self, name) < 1:
                raise ValueError(f"BlockedConfig: {name}={getattr(self, name)}, expected >= 1")
        for name in ("block_d", "fwd_block_d"):
            if getattr(self, name) & (getattr(self, name) - 1):
                raise ValueError(f"BlockedConfig: {name}={getattr(self, name)}, expected a power of two")


# programs that keep an H100's 132 SMs busy with several resident programs each; below it, the
# sequence is cut into segments (each costs an extra walk of its states).  The forward's one-warp
# programs want many more (H200 sweeps, 2026-12-03: at Vim-S 1248 px batch 8, 512 / 1024 / 2048 / 8192
# gave 2.61 / 1.50 / 0.92 / 0.83 ms; fwd_block_d 32 beat 64 and 128 there, within 10% elsewhere)
TARGET_PROGRAMS = 1024
FWD_TARGET_PROGRAMS = 8192


def fits(dim: int, groups_b: int, groups_c: int, block_d: int) -> bool:
    """Whether every block of `block_d` channels reads a single B group and a single C group."""
    return all(g == 1 or (dim // g) % block_d == 0 for g in (groups_b, groups_c))


def fitted_block(block_d: int, dim: int, groups_b: int = 1, groups_c: int = 1) -> int:
    """block_d halved until a block reads one B group and one C group, and no wider than dim needs."""
    while block_d > 1 and not fits(dim, groups_b, groups_c, block_d):
        block_d //= 2
    return min(block_d, triton.next_power_of_2(dim))


def _n_segs(programs: int, length: int, chunk: int, target: int) -> int:
    """Segments that bring programs x segments up to `target`, each of at least 4 chunks so that the
    extra segment walk stays a small part of the work."""
    max_segs = max(1, triton.cdiv(length, 4 * chunk))
    return max(1, min(max_segs, triton.cdiv(target, programs)))


def default_config(batch: int, dim: int, length: int, n: int, groups_b: int = 1, groups_c: int = 1) -> BlockedConfig:
    """Backward: a (block_d x N) state tile of ~256 fp32 values.  Forward: 32 channels per warp.
    Segments up to TARGET_PROGRAMS programs each way."""
    block_d = fitted_block(max(1, 256 // n), dim, groups_b, groups_c)
    fwd_block_d = fitted_block(32, dim, groups_b, groups_c)
    chunk = 32
    n_segs_bwd = _n_segs(batch * triton.cdiv(dim, block_d), length, chunk, TARGET_PROGRAMS)
    n_segs = _n_segs(batch * triton.cdiv(dim, fwd_block_d), length, chunk, FWD_TARGET_PROGRAMS)
    return BlockedConfig(block_d=block_d, chunk=chunk, n_segs=n_segs, n_segs_bwd=n_segs_bwd, num_warps=2,
                         fwd_block_d=fwd_block_d)


def _dense(x: torch.Tensor | None) -> torch.Tensor | None:
    """x itself when its memory is non-overlapping and dense (any dimension order: a transposed view of
    a time-major tensor is read in place), else a contiguous copy.  Gradient buffers are then
    allocated with exactly x's strides, so one set of strides serves both."""
    if x is None:
        return None
    return x if is_dense(x) else x.contiguous()


def _like(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)


def _strides(x: torch.Tensor | None, ndim: int) -> tuple[int, ...]:
    return (0,) * ndim if x is None else tuple(x.stride())


def _segments(n_chunks: int, n_segs: int) -> tuple[int, int]:
    """(chunks per segment, number of segments) with no empty segment."""
    per = triton.cdiv(n_chunks, max(1, min(n_segs, n_chunks)))
    return per, triton.cdiv(n_chunks, per)


def blocked_forward(u, delta, A, B4, C4, D, z, delta_bias, delta_softplus: bool, reverse: bool,
                    store_checkpoints: bool, config: BlockedConfig):
    """(y, checkpoints).  B4, C4: (batch, G, N, L).  checkpoints: (batch, dim, n_chunks + 1, N) fp32,
    row k the state before scan step k * chunk (in scan order), the last row the final state; without
    store_checkpoints only that last row, (batch, dim, 1, N).  Every input is read through its strides
    (no copies); y gets u's memory layout."""
    batch, dim, length = u.shape
    n = A.shape[1]
    D, delta_bias = (t.contiguous() if t is not None else None for t in (D, delta_bias))   # (dim,): tiny
    A2 = (A.float() * LOG2E).t().contiguous()        # (N, dim): see _fwd_tile
    gb, gc = B4.shape[1], C4.shape[1]
    cfg = config
    n_chunks = triton.cdiv(length, cfg.chunk)
    per_seg, n_segs = _segments(n_chunks, cfg.n_segs)
    block_d = fitted_block(cfg.fwd_block_d, dim, gb, gc)
    n_dblocks = triton.cdiv(dim, block_d)
    programs = batch * n_dblocks
    f32 = dict(device=u.device, dtype=torch.float32)
    out = torch.empty_like(u)
    ckpt = torch.empty(batch, dim, n_chunks + 1 if store_checkpoints else 1, n, **f32)
    seg_h = torch.empty(programs, n_segs, n, block_d, **f32) if n_segs > 1 else ckpt
    seg_dt = torch.empty(programs, n_segs, block_d, **f32) if n_segs > 1 else ckpt
    flags = dict(HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse),
                 EVEN_D=dim % block_d == 0)
    warps = max(1, min(cfg.fwd_warps, block_d // 32))
    if n_segs > 1:
        _fwd_segment_states_kernel[(programs, n_segs - 1)](
            u, delta, A2, B4, delta_bias, seg_h, seg_dt, *u.stride(), *delta.stride(), *B4.stride(),
            dim, length, n_dblocks, per_seg * cfg.chunk, n_segs, dim // gb,
            N=n, BLOCK_D=block_d, num_warps=warps, **flags)
    _fwd_kernel[(programs, n_segs)](
        u, delta, A2, B4, C4, D, u if z is None else z, delta_bias, out, ckpt, seg_h, seg_dt,
        *u.stride(), *delta.stride(), *_strides(z, 3), *out.stride(), *B4.stride(), *C4.stride(),
        dim, length, n_dblocks, per_seg, n_chunks, n_segs, ckpt.shape[2], dim // gb, dim // gc,
        N=n, BLOCK_D=block_d, CHUNK=cfg.chunk, HAS_D=D is not None, HAS_Z=z is not None,
        STORE_CKPT=bool(store_checkpoints), num_warps=warps, **flags)
    return out, ckpt


def blocked_backward(dout, dlast, u, delta, A, B4, C4, D, z, delta_bias, ckpt, delta_softplus: bool,
                     reverse: bool, config: BlockedConfig):
    """Gradients (du, ddelta, dA, dB4, dC4, dD, dz, ddelta_bias) from the forward's checkpoints; dB4, dC4
    fp32 (batch, G, N, L), dA, dD, ddelta_bias fp32."""
    batch, dim, length = u.shape
    n = A.shape[1]
    u, delta, z, dout = _dense(u), _dense(delta), _dense(z), _dense(dout)
    D, delta_bias = (t.contiguous() if t is not None else None for t in (D, delta_bias))
    A2 = (A.float() * LOG2E).contiguous()
    gb, gc = B4.shape[1], C4.shape[1]
    cfg = config
    n_chunks = triton.cdiv(length, cfg.chunk)
    if ckpt.shape[2] != n_chunks + 1:
        raise ValueError(f"blocked_backward: checkpoints have shape {tuple(ckpt.shape)}, expected "
                         f"(batch, dim, {n_chunks + 1}, N) for chunk={cfg.chunk} (forward run without "
                         f"store_checkpoints, or with another chunk)")
    per_seg, n_segs = _segments(n_chunks, cfg.n_segs_bwd)
    n_dblocks = triton.cdiv(dim, cfg.block_d)
    programs = batch * n_dblocks
    f32 = dict(device=u.device, dtype=torch.float32)
    du, ddelta, dz = _like(u), _like(delta), _like(z)
    dB = torch.zeros(B4.shape, **f32)
    dC = torch.zeros(C4.shape, **f32)
    dA = torch.empty(batch, n_segs, dim, n, **f32)
    dD = torch.empty(batch, n_segs, dim, **f32) if D is not None else None
    dbias = torch.empty(batch, n_segs, dim, **f32) if delta_bias is not None else None
    scratch = torch.empty(programs * n_segs * (cfg.chunk + 1) * cfg.block_d * n, **f32)
    seg_g = torch.empty(programs, n_segs, cfg.block_d, n, **f32) if n_segs > 1 else scratch
    seg_dt = torch.empty(programs, n_segs, cfg.block_d, **f32) if n_segs > 1 else scratch
    dlast = dlast.float().contiguous() if dlast is not None else None
    flags = dict(HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=bool(delta_softplus),
                 REVERSE=bool(reverse))
    if n_segs > 1:
        _bwd_segment_carries_kernel[(programs, n_segs - 1)](
            delta, A2, C4, delta if z is None else z, delta_bias, dout, seg_g, seg_dt,
            *delta.stride(), *_strides(z, 3), *dout.stride(), *C4.stride(),
            dim, length, n_dblocks, per_seg * cfg.chunk, n_segs, dim // gc,
            N=n, BLOCK_D=cfg.block_d, num_warps=cfg.num_warps, **flags)
    _bwd_kernel[(programs, n_segs)](
        u, delta, A2, B4, C4, D, u if z is None else z, delta_bias, dout, dlast, ckpt, seg_g, seg_dt, scratch,
        du, ddelta, du if dz is None else dz, dB, dC, dA, dD, dbias,
        *u.stride(), *delta.stride(), *_strides(z, 3), *dout.stride(), *B4.stride(), *C4.stride(),
        dim, length, n_dblocks, per_seg, n_chunks, n_segs, dim // gb, dim // gc, gb, gc,
        N=n, BLOCK_D=cfg.block_d, CHUNK=cfg.chunk, HAS_D=D is not None, HAS_DLAST=dlast is not None,
        num_warps=cfg.num_warps, **flags)
    return (du, ddelta, dA.sum((0, 1)), dB, dC, dD.sum((0, 1)) if D is not None else None, dz,
            dbias.sum((0, 1)) if delta_bias is not None else None)
