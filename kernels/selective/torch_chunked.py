"""Chunked selective scan in plain PyTorch ops: the CPU default, the fallback anywhere, exportable.

The sequence is cut into `nc` chunks of `T` steps and all chunks advance together, one chunk
position per step, on tensors laid out (T, batch, groups, nc, N, channels) so that every step's slice
is contiguous and small enough to stay in cache:
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

import contextlib
import math

import torch
import torch.nn.functional as F

from ._common import as_grouped, compute_dtype, discretize, epilogue


def default_chunk_size(length: int) -> int:
    """T ~ sqrt(L / 8): forward and backward make ~15 ops per in-chunk step and ~2 per between-chunk
    step, so the optimum sits below sqrt(L) (measured on 2 CPU cores: T = 8 for L = 197, 16 for 3136)."""
    return int(min(64, max(8, 2 ** round(math.log2(max(1.0, math.sqrt(length / 8)))))))


def _to_chunk_major(x: torch.Tensor, nc: int, T: int) -> torch.Tensor:
    """(..., L_padded) -> (T, ..., nc), so that x[t] is one chunk position across all chunks."""
    return x.unflatten(-1, (nc, T)).movedim(-1, 0)


def _from_chunk_major(x: torch.Tensor, length: int) -> torch.Tensor:
    """(T, ..., nc) -> (..., L)."""
    return x.movedim(0, -1).flatten(-2)[..., :length]


def _no_autocast(device_type: str):
    """Autocast off where it exists (the meta device of FLOP counting has none)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


class _ChunkedScan(torch.autograd.Function):
    """y = <C, h> on a (T, b, G, nc, N, H) layout; inputs already discretised and chunked.

    dt, dtu = dt * u: (T, b, G, nc, 1, H)   B, C: (T, b, G, nc, N, 1)   A: (G, 1, N, H)
    returns y: (T, b, G, nc, 1, H) and the final state (b, G, N, H).

    The channels H of a group are the innermost, contiguous dimension: every element-wise op then runs
    long vectorised inner loops (B and C broadcast along it as scalars), where an innermost N of 1-16
    left loops of a few elements and ran 3-6x slower on CPU.  The contractions over N or H are
    batched matmuls of small matrices (no N-sized intermediate is written).
    """

    @staticmethod
    def forward(ctx, dt, dtu, A, B, C):
        # the state math stays in the compute dtype: under autocast, matmul would run in bf16 / fp16
        with _no_autocast(dt.device.type):
            return _ChunkedScan._forward(ctx, dt, dtu, A, B, C)

    @staticmethod
    def backward(ctx, dy, dlast):
        with _no_autocast(ctx.device_type):
            return _ChunkedScan._backward(ctx, dy, dlast)

    @staticmethod
    def _forward(ctx, dt, dtu, A, B, C):
        ctx.device_type = dt.device.type
        T = dt.shape[0]
        # whole-tensor ops, then views per chunk position: one large op beats T small ones
        decay = torch.exp(dt * A).unbind(0)                  # T x (b, G, nc, N, H)
        x = (dtu * B).unbind(0)
        Ct = C.transpose(-1, -2)                              # (T, b, G, nc, 1, N)
        local, total = x[0], decay[0]
        for t in range(1, T):
            local = torch.addcmul(x[t], decay[t], local)
            total = decay[t] * total
        nc = local.shape[-3]
        entering = [torch.zeros_like(local[..., 0, :, :])]
        for c in range(nc - 1):
            entering.append(torch.addcmul(local[..., c, :, :], total[..., c, :, :], entering[-1]))
        h = h0 = torch.stack(entering, dim=-3)
        states, ys = [], []
        for t in range(T):
            h = torch.addcmul(x[t], decay[t], h)
            if any(ctx.needs_input_grad):
                states.append(h)
            ys.append(torch.matmul(Ct[t], h))                 # (b, G, nc, 1, H)
        last = torch.addcmul(local[..., -1, :, :], total[..., -1, :, :], entering[-1])
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(dt, dtu, A, B, C, h0, torch.stack(states))
        return torch.stack(ys), last

    @staticmethod
    def _backward(ctx, dy, dlast):
        dt, dtu, A, B, C, h0, states = ctx.saved_tensors
        dy = dy.to(dt.dtype)
        dlast = None if dlast is None else dlast.to(dt.dtype)
        T = dt.shape[0]
        if dy is None:
            dy = torch.zeros_like(dt)
        decay = torch.exp(dt * A).unbind(0)                  # T x (b, G, nc, N, H)
        c_dy = (dy * C).unbind(0)
        Bt = B.transpose(-1, -2)                              # (T, b, G, nc, 1, N)
        dyt, dtut = dy.transpose(-1, -2), dtu.transpose(-1, -2)   # (T, b, G, nc, H, 1)
        # pass 1 (reverse, zero carry): what each chunk sends back into the previous one
        local = c_dy[T - 1]
        total = torch.ones_like(local)
        for t in range(T - 2, -1, -1):
            total = decay[t + 1] * total
            local = torch.addcmul(c_dy[t], decay[t + 1], local)
        send, total = decay[0] * local, decay[0] * total
        nc = local.shape[-3]
        # carries: the adjoint arriving at each chunk's end from the chunks after it
        carry = [dlast if dlast is not None else torch.zeros_like(local[..., 0, :, :])]
        for c in range(nc - 1, 0, -1):
            carry.append(torch.addcmul(send[..., c, :, :], total[..., c, :, :], carry[-1]))
        g_next = torch.stack(carry[::-1], dim=-3)             # = a_{t+1} g_{t+1} at each chunk end
        # pass 2 (reverse): the true adjoint, and every gradient from (h_t, g_t)
        ddt, du_dt, dB, dC = [None] * T, [None] * T, [None] * T, [None] * T
        dA = torch.zeros_like(states[0])
        for t in range(T - 1, -1, -1):
            g = c_dy[t] + g_next
            h = states[t]
            # a_t h_{t-1} formed as a product: h_t - x_t would cancel where the decay is small
            g_carried = g * (decay[t] * (states[t - 1] if t else h0))
            ddt[t] = (g_carried * A).sum(-2, keepdim=True)    # (b, G, nc, 1, H)
            dA = torch.addcmul(dA, g_carried, dt[t])
            du_dt[t] = torch.matmul(Bt[t], g)                 # sum_n g B: d/d(dtu)
            dB[t] = torch.matmul(g, dtut[t])                  # (b, G, nc, N, 1)
            dC[t] = torch.matmul(h, dyt[t])
            g_next = decay[t] * g
        dA = dA.sum(dim=(0, 2)).unsqueeze(1)                  # (G, 1, N, H)
        return torch.stack(ddt), torch.stack(du_dt), dA, torch.stack(dB), torch.stack(dC)


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

    def channels_inner(x):   # (b, G, H, L) -> (T, b, G, nc, 1, H)
        return _to_chunk_major(x.view(grouped), nc, T).transpose(-1, -2).unsqueeze(-2).contiguous()

    def states_inner(x):     # (b, G, N, L) -> (T, b, G, nc, N, 1)
        return _to_chunk_major(x, nc, T).transpose(-1, -2).unsqueeze(-1).contiguous()

    y, last = _ChunkedScan.apply(
        channels_inner(dt), channels_inner(dtu),
        A.to(dtype).view(groups, dim // groups, n).transpose(-1, -2).unsqueeze(1).contiguous(),
        states_inner(Bg), states_inner(Cg))
    y = _from_chunk_major(y.squeeze(-2).transpose(-1, -2), length)          # (b, G, H, L)
    out = epilogue(y.reshape(batch, dim, length), uc, D, z, u.dtype)
    return (out, last.transpose(-1, -2).reshape(batch, dim, n)) if return_last_state else out
