"""Which wrapper a Triton kernel call goes through.  Every Triton op is a `torch.library` custom op (so that
torch.compile and torch.export trace around the kernels, with fake implementations for their shapes) and
an autograd.Function over the same launchers.  Only tracing needs the custom op; its Python dispatch costs
more per call, which eager models pay on every layer: with the launchers stubbed, a selective-scan fwd+bwd
costs ~135 us of CPU through the Function and ~266 us through the custom ops on a 2-core CPU
(docs/results/gpu_h100_2026-12-07_session11/cpu_overhead.json).  Traced calls must take the custom op: dynamo
cannot trace the launchers, and compiled code needs the fake implementations."""
from __future__ import annotations

import torch

# where eager callers' tensors come from; tracing (fake, functional, DTensor, proxy) hands other types
_EAGER_TYPES = (torch.Tensor, torch.nn.Parameter)


def traced(*tensors: torch.Tensor | None) -> bool:
    """Whether this call is being traced: dynamo is compiling (torch.compile, strict export), or an input
    is not a plain tensor or parameter (non-strict export and AOT autograd trace with fake / functional
    tensor subclasses)."""
    return torch.compiler.is_compiling() or any(t is not None and type(t) not in _EAGER_TYPES for t in tensors)
