"""The ground truth: the recurrence written as a sequential loop over time. Never optimised."""
from __future__ import annotations

import torch

from ._common import as_grouped, compute_dtype, discretize, epilogue


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                             return_last_state=False):
    """h_t = exp(dt_t*A) h_{t-1} + dt_t B_t u_t;  y_t = <C_t, h_t> + D u_t;  y *= silu(z)."""
    dtype = compute_dtype(u, delta, A)
    batch, dim, length = u.shape
    dt = discretize(delta, delta_bias, delta_softplus, dtype)
    uc, Ac = u.to(dtype), A.to(dtype)
    # repeat each group's B/C for the dim // G channels it serves: channel d reads group d // (dim // G)
    Bx = as_grouped(B).to(dtype)
    Cx = as_grouped(C).to(dtype)
    Bx = Bx.repeat_interleave(dim // Bx.shape[1], dim=1)
    Cx = Cx.repeat_interleave(dim // Cx.shape[1], dim=1)
    h = uc.new_zeros(batch, dim, A.shape[1])
    ys = []
    # per-step views via unbind: indexing x[..., t] would make autograd's backward O(L^2)
    # (each step's gradient is scattered into a zero tensor of the full length)
    steps = zip(dt.unsqueeze(2).unbind(-1), uc.unsqueeze(2).unbind(-1), Bx.unbind(-1), Cx.unbind(-1))
    for dt_t, u_t, B_t, C_t in steps:
        h = torch.exp(dt_t * Ac) * h + dt_t * B_t * u_t
        ys.append((h * C_t).sum(-1))
    y = epilogue(torch.stack(ys, dim=-1), uc, D, z, u.dtype)
    return (y, h) if return_last_state else y
