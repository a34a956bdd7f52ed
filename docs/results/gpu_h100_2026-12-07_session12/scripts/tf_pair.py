"""Session 12 variant: the chunked backward with K channels of one group per one-warp program, as [K, BLOCK_L]
tiles.  B / C are loaded once for the K channels and dB / dC are summed over them in registers before the
atomics (K times fewer atomic adds).  Same maths as kernels/selective/triton_fused.py's _bwd_kernel."""
import torch
import triton
import triton.language as tl

from vision_mamba.kernels.selective import triton_fused as tf
from vision_mamba.kernels.selective.triton_fused import LOG2E, _first_order, _load_dt, _mem


@triton.jit
def _bwd_kernel_k(
    u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, ckpt_ptr, dout_ptr,
    gcarry_ptr, du_ptr, ddelta_ptr, dz_ptr, dB_ptr, dC_ptr, dA_ptr, dD_ptr, dbias_ptr,
    dim, L, n_chunks, d_per_group_B, d_per_group_C, G_B, G_C,
    su_b, su_d, sdt_b, sdt_d, sz_b, sz_d, sdy_b, sdy_d, sB_b, sB_g, sB_n, sB_t, sC_b, sC_g, sC_n, sC_t,
    N: tl.constexpr, BLOCK_L: tl.constexpr, K: tl.constexpr,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    REVERSE: tl.constexpr,
):
    pid = tl.program_id(0)
    nblk = dim // K
    b = pid // nblk
    d0 = (pid % nblk) * K
    offs = tl.arange(0, BLOCK_L)
    dk = tl.arange(0, K)
    d = d0 + dk                                   # [K]
    ch = b.to(tl.int64) * dim + d.to(tl.int64)    # [K]: the one-channel kernel's pid
    b64 = b.to(tl.int64)
    d64 = d.to(tl.int64)[:, None]
    row = ch[:, None] * L
    row_u = b64 * su_b + d64 * su_d
    row_dt = b64 * sdt_b + d64 * sdt_d
    row_z = b64 * sz_b + d64 * sz_d
    row_dy = b64 * sdy_b + d64 * sdy_d
    group_B = (b * G_B + d0 // d_per_group_B).to(tl.int64) * N * L
    group_C = (b * G_C + d0 // d_per_group_C).to(tl.int64) * N * L
    B_base = B_ptr + b64 * sB_b + (d0 // d_per_group_B) * sB_g
    C_base = C_ptr + b64 * sC_b + (d0 // d_per_group_C) * sC_g
    ckpt = ckpt_ptr + ch * (n_chunks + 1) * N     # [K]
    gcarry = gcarry_ptr + ch * N                  # [K]
    bias = tl.zeros([K, 1], tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d).to(tl.float32)[:, None]
    Dv = tl.zeros([K, 1], tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + d).to(tl.float32)[:, None]
    offs_n = tl.arange(0, N)
    dA_acc = tl.zeros([K, N], tl.float32)
    dD_acc = tl.zeros([K], tl.float32)
    dbias_acc = tl.zeros([K], tl.float32)
    dt_next = tl.zeros([K], tl.float32)
    zero_k = tl.zeros([K, BLOCK_L], tl.int32)
    for ci in range(n_chunks):
        c = n_chunks - 1 - ci
        t = c * BLOCK_L + offs
        mask1 = t < L
        mask = mask1[None, :] & (dk < K)[:, None]
        tm = _mem(t, L, REVERSE)
        tm0 = _mem(t - 1, L, REVERSE)
        dt, raw = _load_dt(delta_ptr, bias, row_dt + tm[None, :], mask, SOFTPLUS)
        nxt = zero_k + tl.minimum(offs + 1, BLOCK_L - 1)[None, :]
        dt1 = tl.where((offs == BLOCK_L - 1)[None, :], dt_next[:, None], tl.gather(dt, nxt, 1))
        u = tl.load(u_ptr + row_u + tm[None, :], mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(dout_ptr + row_dy + tm[None, :], mask=mask, other=0.0).to(tl.float32)
        dy_out = dy
        if HAS_Z:
            zt = tl.load(z_ptr + row_z + tm[None, :], mask=mask, other=0.0).to(tl.float32)
            sig = tl.sigmoid(zt)
            dy = dy * zt * sig
        dtu = dt * u
        du = dy * Dv
        ddt = tl.zeros([K, BLOCK_L], tl.float32)
        ypre = u * Dv
        prev = (offs > 0)[None, :]
        prv = zero_k + tl.maximum(offs - 1, 0)[None, :]
        dt0 = tl.where(prev, tl.gather(dt, prv, 1), 0.0)
        dtu0 = tl.where(prev, tl.gather(dtu, prv, 1), 0.0)
        for n in range(N):
            a = tl.load(A_ptr + d * N + n)[:, None]
            a2 = a * LOG2E
            Bn = tl.load(B_base + n * sB_n + tm * sB_t, mask=mask1, other=0.0).to(tl.float32)[None, :]
            Cn = tl.load(C_base + n * sC_n + tm * sC_t, mask=mask1, other=0.0).to(tl.float32)[None, :]
            B0 = tl.load(B_base + n * sB_n + tm0 * sB_t, mask=(offs > 0) & (t - 1 < L),
                         other=0.0).to(tl.float32)[None, :]
            cum, local = tl.associative_scan((tl.exp2(dt0 * a2), dtu0 * B0), 1, _first_order)
            h_prev = local + cum * tl.load(ckpt + c * N + n)[:, None]
            carried = tl.exp2(dt * a2) * h_prev
            hs = carried + dtu * Bn
            cum_r, g_local = tl.associative_scan((tl.exp2(dt1 * a2), Cn * dy), 1, _first_order, reverse=True)
            g = g_local + cum_r * tl.load(gcarry + n)[:, None]
            tl.store(gcarry[:, None] + n + zero_k, g, mask=(offs == 0)[None, :] & (zero_k == 0))
            ypre += hs * Cn
            ddt += g * (a * carried + Bn * u)
            du += g * Bn * dt
            dA_acc += tl.where(offs_n[None, :] == n, tl.sum(g * dt * carried, axis=1)[:, None], 0.0)
            tl.atomic_add(dB_ptr + group_B + n * L + tm, tl.sum(g * dtu, axis=0), mask=mask1, sem="relaxed")
            tl.atomic_add(dC_ptr + group_C + n * L + tm, tl.sum(hs * dy, axis=0), mask=mask1, sem="relaxed")
        tl.debug_barrier()
        if HAS_Z:
            tl.store(dz_ptr + row + tm[None, :],
                     (dy_out * ypre * sig * (1.0 + zt * (1.0 - sig))).to(dz_ptr.dtype.element_ty), mask=mask)
        if SOFTPLUS:
            ddt = ddt * tl.sigmoid(raw)
        ddt = tl.where(mask, ddt, 0.0)
        dbias_acc += tl.sum(ddt, axis=1)
        dD_acc += tl.sum(dy * u, axis=1)
        tl.store(du_ptr + row + tm[None, :], du.to(du_ptr.dtype.element_ty), mask=mask)
        tl.store(ddelta_ptr + row + tm[None, :], ddt.to(ddelta_ptr.dtype.element_ty), mask=mask)
        dt_next = tl.sum(tl.where((offs == 0)[None, :], dt, 0.0), axis=1)
    tl.store(dA_ptr + ch[:, None] * N + offs_n[None, :], dA_acc)
    if HAS_D:
        tl.store(dD_ptr + ch, dD_acc)
    if HAS_BIAS:
        tl.store(dbias_ptr + ch, dbias_acc)


class Variant:
    """.forward / .backward with triton_fused's signatures, the backward's kernel K channels per program and
    both halves at BLOCK_L = block_l (triton_fused's _launch_config and _chunked_backward patched per call)."""
    def __init__(self, k: int, block_l: int):
        self.k, self.block_l = k, block_l

    def _patched(self, fn, *args, **kw):
        saved = tf._launch_config, tf._chunked_backward
        tf._launch_config = lambda length, n: (min(self.block_l, max(32, triton.next_power_of_2(length))), 1)
        tf._chunked_backward = self._chunked_backward
        try:
            return fn(*args, **kw)
        finally:
            tf._launch_config, tf._chunked_backward = saved

    def forward(self, *args, **kw):
        return self._patched(tf.forward, *args, **kw)

    def backward(self, *args, **kw):
        return self._patched(tf.backward, *args, **kw)

    def _chunked_backward(self, dout, dlast, u, delta, A, B4, C4, D, z, delta_bias, ckpt, delta_softplus,
                          reverse=False):
        k = self.k
        batch, dim, length = u.shape
        n = A.shape[1]
        assert dim % k == 0 and (dim // B4.shape[1]) % k == 0 and (dim // C4.shape[1]) % k == 0
        block_l = tf._launch_config(length, n)[0]
        n_chunks = triton.cdiv(length, block_l)
        assert ckpt.shape[2] == n_chunks + 1, "forward ran with another BLOCK_L"
        (u, *su), (delta, *sdt), (z, *sz), (dout, *sdy) = tf._rows(u), tf._rows(delta), tf._rows(z), tf._rows(dout)
        A = A.contiguous()
        D, delta_bias = (t.contiguous() if t is not None else None for t in (D, delta_bias))
        f32 = dict(device=u.device, dtype=torch.float32)
        gcarry = dlast.float().contiguous().clone() if dlast is not None else torch.zeros(batch, dim, n, **f32)
        du = torch.empty(batch, dim, length, device=u.device, dtype=u.dtype)
        ddelta = torch.empty(batch, dim, length, device=u.device, dtype=delta.dtype)
        dz = torch.empty(batch, dim, length, device=u.device, dtype=z.dtype) if z is not None else None
        dB, dC = torch.zeros(B4.shape, **f32), torch.zeros(C4.shape, **f32)
        dA = torch.empty(batch, dim, n, **f32)
        dD = torch.empty(batch, dim, **f32) if D is not None else None
        dbias = torch.empty(batch, dim, **f32) if delta_bias is not None else None
        gb, gc = B4.shape[1], C4.shape[1]
        _bwd_kernel_k[(batch * dim // k,)](
            u, delta, A, B4, C4, D, z, delta_bias, ckpt, dout, gcarry, du, ddelta, dz, dB, dC, dA, dD, dbias,
            dim, length, n_chunks, dim // gb, dim // gc, gb, gc, *su, *sdt, *sz, *sdy, *B4.stride(), *C4.stride(),
            N=n, BLOCK_L=block_l, K=k, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse), num_warps=1)
        return (du, ddelta, dA.sum(0), dB, dC, dD.sum(0) if D is not None else None, dz,
                dbias.sum(0) if delta_bias is not None else None)
