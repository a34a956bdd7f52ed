"""Chunked selective scan in plain PyTorch ops: the CPU default, the fallback anywhere, exportable.

The sequence is cut into `nc` chunks of `T` steps and all chunks advance together, one chunk
position per step, on tensors laid out (T, batch, dim, nc, ...) so that every step's slice is
contiguous and small enough to stay in cache:
1. a zero-initialised pass gives each chunk's local end state and its total decay
   exp(S) = exp(sum_t dt_t A) (a product of factors exp(<= 0) for the negative A every Mamba uses);
2. the end states are passed from chunk to chunk (nc small steps) into each chunk's entering state;
3. a second pass runs each chunk from its entering state and contracts with C.
Only decays of the form exp(dt*A) are formed, so a huge |dt*A| underflows to 0 as in the
sequential recurrence instead of overflowing (the factored exp(S_t) * cumsum(exp(-S_s) x_s) form
overflows as soon as one chunk decays past ~88 in fp32).  ~2*sqrt(L) Python steps replace the L of
the sequential loop.

The backward is written out (an autograd.Function) rather than traced through the loops: the
adjoint g_t = C_t dy_t + exp(dt_{t+1} A) g_{t+1} runs the same chunked scheme in reverse, and each
step's gradients come from (h_t, g_t) slices.  It keeps the states of pass 3 (one (batch, dim, L, N)
tensor), where autograd would keep several.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._common import as_grouped, compute_dtype, discretize, epilogue


def default_chunk_size(length: int) -> int:
    """T ~ sqrt(L / 8): forward and backward make ~15 ops per in-chunk step and ~2 per between-chunk
    step, so the optimum sits below sqrt(L) (measured on 2 CPU cores: T = 8 for L = 197, 16 for 3136)."""
    return int(min(64, max(8, 2 ** round(math.log2(max(1.0, math.sqrt(length / 8)))))))


def _to_chunk_major(x: torch.Tensor, nc: int, T: int) -> torch.Tensor:
    """(..., L_padded) -> (T, ..., nc), contiguous, so x[t] is one chunk position across all chunks."""
    return x.unflatten(-1, (nc, T)).movedim(-1, 0).contiguous()


def _from_chunk_major(x: torch.Tensor, length: int) -> torch.Tensor:
    """(T, ..., nc) -> (..., L)."""
    return x.movedim(0, -1).flatten(-2)[..., :length]


class _ChunkedScan(torch.autograd.Function):
    """y = <C, h> over a grouped (T, b, G, H, nc) layout; inputs already discretised and chunked.

    dt: (T, b, G, H, nc)   dtu = dt * u: same   B, C: (T, b, G, nc, N)   A: (G, H, N)
    returns y: (T, b, G, H, nc) and the final state (b, G, H, N) (state after the last chunk).
    """

    @staticmethod
    def forward(ctx, dt, dtu, A, B, C):
        T, nc = dt.shape[0], dt.shape[-1]
        # whole-tensor ops, then views per chunk position: one large op beats T small ones
        decay = torch.exp(dt.unsqueeze(-1) * A.unsqueeze(2)).unbind(0)     # T x (b, G, H, nc, N)
        x = (dtu.unsqueeze(-1) * B.unsqueeze(3)).unbind(0)
        local, total = x[0], decay[0]
        for t in range(1, T):
            local = torch.addcmul(x[t], decay[t], local)
            total = decay[t] * total
        entering = [torch.zeros_like(local[..., 0, :])]
        for c in range(nc - 1):
            entering.append(torch.addcmul(local[..., c, :], total[..., c, :], entering[-1]))
        h = h0 = torch.stack(entering, dim=-2)
        states, ys = [], []
        for t in range(T):
            h = torch.addcmul(x[t], decay[t], h)
            if any(ctx.needs_input_grad):
                states.append(h)
            ys.append(torch.linalg.vecdot(h, C[t].unsqueeze(2)))
        last = torch.addcmul(local[..., -1, :], total[..., -1, :], entering[-1])
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(dt, dtu, A, B, C, h0, torch.stack(states))
        return torch.stack(ys), last

    @staticmethod
    def backward(ctx, dy, dlast):
        dt, dtu, A, B, C, h0, states = ctx.saved_tensors
        T, nc = dt.shape[0], dt.shape[-1]
        if dy is None:
            dy = torch.zeros_like(dt)
        decay = torch.exp(dt.unsqueeze(-1) * A.unsqueeze(2)).unbind(0)     # T x (b, G, H, nc, N)
        c_dy = (dy.unsqueeze(-1) * C.unsqueeze(3)).unbind(0)
        # pass 1 (reverse, zero carry): what each chunk sends back into the previous one
        local = c_dy[T - 1]
        total = torch.ones_like(local)
        for t in range(T - 2, -1, -1):
            total = decay[t + 1] * total
            local = torch.addcmul(c_dy[t], decay[t + 1], local)
        send, total = decay[0] * local, decay[0] * total
        # carries: the adjoint arriving at each chunk's end from the chunks after it
        carry = [dlast if dlast is not None else torch.zeros_like(local[..., 0, :])]
        for c in range(nc - 1, 0, -1):
            carry.append(torch.addcmul(send[..., c, :], total[..., c, :], carry[-1]))
        g_next = torch.stack(carry[::-1], dim=-2)            # = a_{t+1} g_{t+1} at each chunk end
        # pass 2 (reverse): the true adjoint, and every gradient from (h_t, g_t)
        ddt, du_dt, dB, dC = [None] * T, [None] * T, [None] * T, [None] * T
        dA = torch.zeros_like(states[0])
        for t in range(T - 1, -1, -1):
            g = c_dy[t] + g_next
            h = states[t]
            # a_t h_{t-1} formed as a product: h_t - x_t would cancel where the decay is small
            carried = decay[t] * (states[t - 1] if t else h0)
            ddt[t] = torch.linalg.vecdot(g * carried, A.unsqueeze(2))
            du_dt[t] = torch.linalg.vecdot(g, B[t].unsqueeze(2))
            dA = torch.addcmul(dA, g * dt[t].unsqueeze(-1), carried)
            dB[t] = (g * dtu[t].unsqueeze(-1)).sum(2)
            dC[t] = (h * dy[t].unsqueeze(-1)).sum(2)
            g_next = decay[t] * g
        du_dt = torch.stack(du_dt)                           # sum_n g B: d/d(dtu)
        ddt = torch.stack(ddt)                               # through the decay only
        return ddt, du_dt, dA.sum(dim=(0, 3)), torch.stack(dB), torch.stack(dC)


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False, chunk_size: int | None = None):
    dtype = compute_dtype(u, delta, A)
    batch, dim, length = u.shape
    n = A.shape[1]
    T = chunk_size or default_chunk_size(length)
    nc = -(-length // T)
    pad = nc * T - length

    dt = discretize(delta, delta_bias, delta_softplus, dtype)
    uc = u.to(dtype)
    Bg, Cg = as_grouped(B).to(dtype), as_grouped(C).to(dtype)
    # B and C may have different group counts; scan over the finer one
    groups = math.lcm(Bg.shape[1], Cg.shape[1])
    Bg = Bg.repeat_interleave(groups // Bg.shape[1], dim=1)
    Cg = Cg.repeat_interleave(groups // Cg.shape[1], dim=1)
    dtu = dt * uc
    if pad:  # dt = 0 past the end: decay 1 and input 0, so padding leaves the states unchanged
        dt, dtu = F.pad(dt, (0, pad)), F.pad(dtu, (0, pad))
        Bg, Cg = F.pad(Bg, (0, pad)), F.pad(Cg, (0, pad))
    grouped = (batch, groups, dim // groups, nc * T)
    y, last = _ChunkedScan.apply(
        _to_chunk_major(dt.view(grouped), nc, T), _to_chunk_major(dtu.view(grouped), nc, T),
        A.to(dtype).view(groups, dim // groups, n),
        _to_chunk_major(Bg, nc, T).transpose(-1, -2), _to_chunk_major(Cg, nc, T).transpose(-1, -2))
    out = epilogue(_from_chunk_major(y, length).reshape(batch, dim, length), uc, D, z, u.dtype)
    return (out, last.reshape(batch, dim, n)) if return_last_state else out
