"""Chunked selective scan in plain PyTorch ops: the CPU default, the fallback anywhere, exportable.

The sequence is cut into `nc` chunks of `T` steps, all chunks processed at once:
1. within each chunk, a zero-initialised scan over its T positions gives the local states, and the
   running product of decays from the chunk start gives the cumulative decay exp(S_t) with
   S_t = sum_{s<=t} dt_s A (log space, S_t <= 0 for the negative A every Mamba uses);
2. the chunk-end states are passed from chunk to chunk (nc small steps);
3. h_t = local_t + exp(S_t) * state entering the chunk.
Only decays of the form exp(<=0) are ever formed, so a huge |dt*A| underflows to 0 as in the
sequential recurrence instead of overflowing (the factored exp(S_t) * cumsum(exp(-S_s) x_s) form
overflows as soon as one chunk decays past ~88 in fp32).  T + nc ~ 2*sqrt(L) Python steps replace
the L of the sequential loop, and every step works on 1/T of the data, laid out so that its slice
is contiguous: tensors are (T, batch, dim, nc, N).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._common import as_grouped, compute_dtype, discretize, epilogue


def default_chunk_size(length: int) -> int:
    """T ~ sqrt(L) balances the T in-chunk steps against the nc between-chunk steps."""
    return int(min(64, max(8, 2 ** round(math.log2(max(1.0, math.sqrt(length)))))))


def _to_chunk_major(x: torch.Tensor, nc: int, T: int) -> torch.Tensor:
    """(..., L_padded) -> (T, ..., nc), contiguous, so x[t] is one chunk position across all chunks."""
    x = x.unflatten(-1, (nc, T))
    return x.movedim(-1, 0).contiguous()


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
    gb, gc = Bg.shape[1], Cg.shape[1]
    dtu = dt * uc
    if pad:  # dt = 0 past the end: decay 1 and input 0, so padding leaves the states unchanged
        dt, dtu = F.pad(dt, (0, pad)), F.pad(dtu, (0, pad))
        Bg, Cg = F.pad(Bg, (0, pad)), F.pad(Cg, (0, pad))

    dt_c = _to_chunk_major(dt, nc, T)                                      # (T, b, d, nc)
    decay = torch.exp(dt_c.unsqueeze(-1) * A.to(dtype)[:, None, :])        # (T, b, d, nc, n)
    dtu_c = _to_chunk_major(dtu.view(batch, gb, dim // gb, -1), nc, T)     # (T, b, gb, d/gb, nc)
    B_c = _to_chunk_major(Bg, nc, T).transpose(-1, -2).unsqueeze(3)        # (T, b, gb, 1, nc, n)
    x = (dtu_c.unsqueeze(-1) * B_c).flatten(2, 3)                          # (T, b, d, nc, n)

    # unbind (not x[t]) so that autograd's backward is one stack, not T scatters into zeros
    xs, decays = x.unbind(0), decay.unbind(0)
    local, cum = [xs[0]], [decays[0]]
    for t in range(1, T):
        local.append(torch.addcmul(xs[t], decays[t], local[-1]))
        cum.append(decays[t] * cum[-1])
    chunk_out, chunk_decay = local[-1].unbind(2), cum[-1].unbind(2)
    local, cum = torch.stack(local), torch.stack(cum)

    entering = [torch.zeros_like(chunk_out[0])]
    for c in range(nc - 1):
        entering.append(torch.addcmul(chunk_out[c], chunk_decay[c], entering[-1]))
    entering = torch.stack(entering, dim=2)                                # (b, d, nc, n)

    h = torch.addcmul(local, cum, entering)                                # (T, b, d, nc, n)
    C_c = _to_chunk_major(Cg, nc, T).transpose(-1, -2).unsqueeze(3)        # (T, b, gc, 1, nc, n)
    y = (h.unflatten(2, (gc, dim // gc)) * C_c).sum(-1).flatten(2, 3)      # (T, b, d, nc)
    y = y.movedim(0, -1).reshape(batch, dim, nc * T)[..., :length]
    out = epilogue(y, uc, D, z, u.dtype)
    if return_last_state:
        last = length - 1
        return out, h[last % T, :, :, last // T]
    return out
