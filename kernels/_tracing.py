"""Which wrapper a Triton kernel call goes through.  Every Triton op is a `torch.library` custom op (so that
torch.compile and torch.export trace around the kernels, with fake implementations for their shapes) and
an autograd.Function over the same launchers.  Only tracing needs the custom op; its Python dispatch costs
more per call (a stubbed-kernel selective-scan fwd+bwd on the CPU: ~85 us through the Function, ~210-260
us through the custom ops), which eager models pay on every layer."""
from __future__ import annotations

import torch

# where eager callers' tensors come from; tracing (fake, functional, DTensor, proxy) hands other types
_EAGER_TYPES = (torch.Tensor, torch.nn.Parameter)


def traced(*tensors: torch.Tensor | None) -> bool:
    """Whether this call is being traced: dynamo is compiling (torch.compile, strict export), or an input
    is not a plain tensor or parameter (non-strict export and AOT autograd trace with fake / functional
    tensor subclasses)."""
    return torch.compiler.is_compiling() or any(t is not None and type(t) not in _EAGER_TYPES for t in tensors)
