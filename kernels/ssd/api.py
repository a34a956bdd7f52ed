"""`ssd_scan`: one entry point with mamba_ssm's `mamba_chunk_scan_combined` semantics, argument
checks, backend dispatch."""
from __future__ import annotations

import numbers
import os
from typing import Callable

import torch

from ..selective import api as _selective_api
from .reference import ssd_scan_reference
from .torch_chunked import ssd_scan_torch

_FLOAT_INPUTS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_FLOAT_PARAMS = (torch.float32, torch.float64)
# the fused kernels hold a (chunk, chunk) tile and (headdim, dstate) states in registers
TRITON_CHUNK_SIZES = (16, 32, 64, 128)
TRITON_MAX_HEADDIM = 128
TRITON_MAX_DSTATE = 128


def _triton_backend() -> Callable:
    from .triton_fused import ssd_scan_triton  # imports triton: only when asked for
    return ssd_scan_triton


BACKENDS: dict[str, Callable[[], Callable]] = {
    "reference": lambda: ssd_scan_reference,
    "torch": lambda: ssd_scan_torch,
    "triton": _triton_backend,
}


def _shape(t) -> tuple | str:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def _fits_triton(x, B, chunk_size) -> bool:
    return (isinstance(x, torch.Tensor) and x.dim() == 4 and x.device.type == "cuda"
            and x.dtype != torch.float64 and chunk_size in TRITON_CHUNK_SIZES
            and x.shape[-1] <= TRITON_MAX_HEADDIM
            and isinstance(B, torch.Tensor) and B.dim() == 4 and B.shape[-1] <= TRITON_MAX_DSTATE)


def resolve_backend(backend: str, x, B, chunk_size) -> str:
    """'auto': triton for CUDA tensors it supports (dtype, chunk size, headdim, dstate), torch otherwise."""
    if backend == "auto":
        return "triton" if _fits_triton(x, B, chunk_size) else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"ssd_scan: backend={backend!r}, expected 'auto' or one of {sorted(BACKENDS)}")
    return backend


def _check(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, backend) -> None:
    def fail(msg: str):
        raise ValueError(f"ssd_scan: {msg}")

    named = [("x", x), ("dt", dt), ("A", A), ("B", B), ("C", C), ("D", D), ("z", z), ("dt_bias", dt_bias),
             ("initial_states", initial_states)]
    for name, t in named:
        if not (isinstance(t, torch.Tensor) or (t is None and name in ("D", "z", "dt_bias", "initial_states"))):
            fail(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if x.dim() != 4 or 0 in x.shape:
        fail(f"x has shape {_shape(x)}, expected (batch, L, heads, headdim) with every size > 0")
    batch, length, heads, headdim = x.shape
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        fail(f"chunk_size={chunk_size!r}, expected a positive int")
    for name, t in (("x", x), ("dt", dt), ("B", B), ("C", C), ("z", z), ("initial_states", initial_states)):
        if t is not None and t.dtype not in _FLOAT_INPUTS:
            fail(f"{name} has dtype {t.dtype}, expected one of float16, bfloat16, float32, float64")
    for name, t in (("A", A), ("D", D), ("dt_bias", dt_bias)):
        if t is not None and t.dtype not in _FLOAT_PARAMS:
            fail(f"{name} has dtype {t.dtype}, expected float32 (or float64); parameters are kept in fp32")
    if _shape(dt) != (batch, length, heads):
        fail(f"dt has shape {_shape(dt)}, expected (batch={batch}, L={length}, heads={heads})")
    if _shape(A) != (heads,):
        fail(f"A has shape {_shape(A)}, expected (heads={heads},): one scalar decay per head")
    if B.dim() != 4 or B.shape[:2] != (batch, length) or 0 in B.shape:
        fail(f"B has shape {_shape(B)}, expected (batch={batch}, L={length}, ngroups, dstate)")
    groups, dstate = B.shape[2:]
    if heads % groups:
        fail(f"B has shape {_shape(B)}: ngroups={groups} does not divide heads={heads} "
             f"(expected heads % ngroups == 0)")
    if _shape(C) != _shape(B):
        fail(f"C has shape {_shape(C)}, expected {_shape(B)} (the shape of B)")
    if D is not None and _shape(D) not in ((heads,), (heads, headdim)):
        fail(f"D has shape {_shape(D)}, expected (heads={heads},) or (heads={heads}, headdim={headdim})")
    if z is not None and _shape(z) != _shape(x):
        fail(f"z has shape {_shape(z)}, expected {_shape(x)} (the shape of x)")
    if dt_bias is not None and _shape(dt_bias) != (heads,):
        fail(f"dt_bias has shape {_shape(dt_bias)}, expected (heads={heads},)")
    if initial_states is not None and _shape(initial_states) != (batch, heads, headdim, dstate):
        fail(f"initial_states has shape {_shape(initial_states)}, expected "
             f"(batch={batch}, heads={heads}, headdim={headdim}, dstate={dstate})")
    for name, t in named:
        if t is not None and t.device != x.device:
            fail(f"{name} is on {t.device}, expected {x.device} (the device of x)")
    if backend == "triton":
        if x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            fail(f"backend 'triton' needs CUDA tensors (x is on {x.device}); "
                 f"use backend='torch' or set TRITON_INTERPRET=1")
        if chunk_size not in TRITON_CHUNK_SIZES:
            fail(f"chunk_size={chunk_size}: backend 'triton' supports chunk_size in {TRITON_CHUNK_SIZES}")
        if headdim > TRITON_MAX_HEADDIM:
            fail(f"x has shape {_shape(x)}: backend 'triton' supports headdim <= {TRITON_MAX_HEADDIM}")
        if dstate > TRITON_MAX_DSTATE:
            fail(f"B has shape {_shape(B)}: backend 'triton' supports dstate <= {TRITON_MAX_DSTATE}")
        for name, t in named:
            if t is not None and t.dtype == torch.float64:
                fail(f"{name} has dtype float64: backend 'triton' takes float16/bfloat16/float32 "
                     f"(parameters float32); use backend='torch' or 'reference' for float64")
    # one debug switch for every scan: vision_mamba.kernels.set_debug
    if _selective_api._debug:
        for name, t in named:
            if t is not None and not torch.isfinite(t).all():
                fail(f"{name} (shape {_shape(t)}) contains NaN or Inf (debug mode)")


def ssd_scan(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, dt_softplus=False, initial_states=None,
             return_final_states=False, *, backend: str = "auto"):
    """Mamba-2's SSD scan with the semantics of mamba_ssm's `mamba_chunk_scan_combined`.

    x: (batch, L, heads, headdim); dt: (batch, L, heads); A: (heads,) fp32, one scalar per head;
    B, C: (batch, L, ngroups, dstate) with heads % ngroups == 0 (head h reads group
    h // (heads // ngroups)); D: (heads,) or (heads, headdim) fp32; z: like x; dt_bias: (heads,) fp32;
    initial_states: (batch, heads, headdim, dstate).

        dt' = softplus(dt + dt_bias) if dt_softplus else dt + dt_bias
        h_t = exp(dt'_t A) h_{t-1} + dt'_t x_t B_t^T ;  y_t = h_t C_t + D x_t ;  y *= silu(z)

    It is `selective_scan` with A broadcast over each head's channels and dstate (the duality the
    tests check).  chunk_size: the chunk length of the chunked backends (the result does not depend
    on it beyond rounding).  State math in fp32 (fp64 for fp64 inputs); y has x's dtype; with
    return_final_states the final state (batch, heads, headdim, dstate) in the compute dtype comes
    back too (mamba_ssm returns it in C's dtype).  backend: 'auto' (triton on CUDA where it fits,
    torch elsewhere), 'reference', 'torch' or 'triton'.
    """
    name = resolve_backend(backend, x, B, chunk_size)
    _check(x, dt, A, B, C, chunk_size, D, z, dt_bias, initial_states, name)
    return BACKENDS[name]()(x, dt, A, B, C, int(chunk_size), D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus,
                            initial_states=initial_states, return_final_states=return_final_states)
