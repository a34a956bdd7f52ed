"""Chunked SSD (Mamba-2's state-space duality) in plain PyTorch ops: the CPU default, the fallback
anywhere, exportable.

The sequence is cut into chunks of T steps.  Within a chunk the scan is a masked quadratic form (an
attention-like (T, T) matrix C_l . B_s * exp(sum_{s<k<=l} a_k)); between chunks only one state per
chunk is carried:
1. y_diag: the quadratic form applied to dt * x inside each chunk;
2. each chunk's end state from its own inputs (zero entering state);
3. the entering state of every chunk: the end states passed along with the chunks' total decays,
   written as one (nc + 1, nc + 1) lower-triangular matrix, so no Python loop over chunks;
4. y_off: each entering state read out by C, decayed to every position.
Every decay exponent is a sum of the a_k = dt_k * A it spans, never the difference of two prefix
sums: over long sequences the prefix sums grow large and their difference would lose the small
exponents that matter (mamba_ssm's ssd_minimal "stable segsum").

Autograd runs through the plain ops (no hand-written backward).  It keeps the (batch, heads, n_chunks,
T, T) decay and score matrices and the per-chunk states (batch, n_chunks, heads, headdim, dstate), a
few times the size of the inputs for T = 64, and never a per-position state.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..selective.torch_chunked import _no_autocast
from ._common import compute_dtype, discretize, epilogue


def segsum(a: torch.Tensor) -> torch.Tensor:
    """(..., T) -> (..., T, T): out[l, s] = sum_{s < k <= l} a_k for s <= l (0 on the diagonal), -inf
    above it, so that exp(out) is the lower-triangular decay matrix."""
    T = a.shape[-1]
    below = torch.ones(T, T, dtype=torch.bool, device=a.device).tril(-1)
    terms = a[..., :, None].expand(*a.shape, T).masked_fill(~below, 0)   # terms[k, s] = a_k where k > s
    out = terms.cumsum(dim=-2)                                          # out[l, s] = sum_{s<k<=l} a_k
    return out.masked_fill(~torch.ones_like(below).tril(0), float("-inf"))


def _chunked(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus, initial_states, dtype):
    batch, length, heads, headdim = x.shape
    groups, dstate = B.shape[2:]
    T, R = chunk_size, heads // groups
    nc = -(-length // T)
    pad = nc * T - length

    delta = discretize(dt, dt_bias, dt_softplus, dtype)                        # (b, L, H)
    xc, Bc, Cc = x.to(dtype), B.to(dtype), C.to(dtype)
    if pad:  # delta = 0 past the end (after the softplus): decay 1 and no input, the state is kept
        delta = F.pad(delta, (0, 0, 0, pad))
        xc, Bc, Cc = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (xc, Bc, Cc))
    xdt = (xc * delta[..., None]).view(batch, nc, T, groups, R, headdim)      # dt * x, heads by group
    Bc, Cc = Bc.view(batch, nc, T, groups, dstate), Cc.view(batch, nc, T, groups, dstate)
    a = (delta * A.to(dtype)).view(batch, nc, T, groups, R).permute(0, 3, 4, 1, 2)   # (b, G, R, nc, T)

    # 1. within each chunk
    decay = torch.exp(segsum(a))                                               # (b, G, R, nc, T, T)
    scores = torch.einsum("bclgn,bcsgn->bgcls", Cc, Bc)                        # (b, G, nc, T, T)
    y = torch.einsum("bgrcls,bcsgrp->bclgrp", decay * scores[:, :, None], xdt)
    # 2. each chunk's end state from its own inputs: decay exp(sum_{s<k<T} a_k) from step s to the end
    to_end = torch.exp(F.pad(a[..., 1:], (0, 1)).flip(-1).cumsum(-1).flip(-1))
    states = torch.einsum("bcsgrp,bgrcs,bcsgn->bcgrpn", xdt, to_end, Bc)        # (b, nc, G, R, P, N)
    # 3. entering states: source j = 0 is the initial state, j = c + 1 chunk c's end state
    if initial_states is None:
        h0 = states.new_zeros(batch, 1, groups, R, headdim, dstate)
    else:
        h0 = initial_states.to(dtype).view(batch, 1, groups, R, headdim, dstate)
    passing = torch.exp(segsum(F.pad(a.sum(-1), (1, 0))))                      # (b, G, R, nc+1, nc+1)
    entering = torch.einsum("bgrzj,bjgrpn->bzgrpn", passing, torch.cat([h0, states], dim=1))
    # 4. what each chunk's entering state adds to its outputs, decayed by exp(sum_{k<=l} a_k)
    y = y + torch.einsum("bclgn,bcgrpn,bgrcl->bclgrp", Cc, entering[:, :-1], torch.exp(a.cumsum(-1)))
    y = y.reshape(batch, nc * T, heads, headdim)[:, :length]
    return epilogue(y, x, D, z, x.dtype), entering[:, -1].reshape(batch, heads, headdim, dstate)


def ssd_scan_torch(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False,
                   initial_states=None, return_final_states=False):
    dtype = compute_dtype(x, dt, A, B, C, initial_states)
    # the state math stays in the compute dtype: under autocast the einsums would run in bf16 / fp16
    with _no_autocast(x.device.type):
        y, final = _chunked(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus, initial_states, dtype)
    return (y, final) if return_final_states else y
