"""Triton helpers shared by the selective-scan kernels (chunked and blocked)."""
from __future__ import annotations

import triton
import triton.language as tl

# exp(x) = exp2(x * log2(e)): the kernels pre-scale A once and call the cheaper exp2 per state update
LOG2E = 1.4426950408889634


@triton.jit
def softplus(x):
    # log1p without libdevice: log(w) * e / (w - 1) is exact to rounding where 1 + e rounds (Kahan)
    e = tl.exp(tl.minimum(x, 20.0))
    w = 1.0 + e
    log1p = tl.where(w == 1.0, e, tl.log(w) * e / tl.where(w == 1.0, 1.0, w - 1.0))
    return tl.where(x > 20.0, x, log1p)
