"""The ground truth: the SSD recurrence (a selective scan with one scalar decay per head) as a
sequential loop over time. Never optimised."""
from __future__ import annotations

import torch

from ._common import compute_dtype, discretize, epilogue, per_head


def ssd_scan_reference(x, dt, A, B, C, chunk_size=None, D=None, z=None, dt_bias=None, dt_softplus=False,
                       initial_states=None, return_final_states=False):
    """h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T (per head: (headdim, dstate));  y_t = h_t C_t + D x_t;
    y *= silu(z).  chunk_size is accepted for the common signature and ignored."""
    dtype = compute_dtype(x, dt, A, B, C, initial_states)
    batch, _, heads, headdim = x.shape
    delta = discretize(dt, dt_bias, dt_softplus, dtype)                  # (b, L, H)
    xc, Ac = x.to(dtype), A.to(dtype)
    Bh, Ch = per_head(B.to(dtype), heads), per_head(C.to(dtype), heads)  # (b, L, H, N)
    h = (initial_states.to(dtype) if initial_states is not None
         else xc.new_zeros(batch, heads, headdim, B.shape[-1]))
    ys = []
    # per-step views via unbind: indexing x[:, t] would make autograd's backward O(L^2)
    for d_t, x_t, B_t, C_t in zip(delta.unbind(1), xc.unbind(1), Bh.unbind(1), Ch.unbind(1)):
        h = (torch.exp(d_t * Ac)[..., None, None] * h
             + (d_t[..., None] * x_t)[..., None] * B_t[:, :, None, :])
        ys.append((h * C_t[:, :, None, :]).sum(-1))
    y = epilogue(torch.stack(ys, dim=1), xc, D, z, x.dtype)
    return (y, h) if return_final_states else y
