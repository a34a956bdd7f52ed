"""`selective_scan`: one entry point, mamba_ssm's semantics, argument checks, backend dispatch."""
from __future__ import annotations

import contextlib
import os
from typing import Callable

import torch

from .reference import selective_scan_reference
from .torch_chunked import selective_scan_torch

_FLOAT_INPUTS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_FLOAT_PARAMS = (torch.float32, torch.float64)
TRITON_STATE_SIZES = (1, 2, 4, 8, 16, 32, 64)

_debug = os.environ.get("VISION_MAMBA_DEBUG", "0") not in ("", "0")


def set_debug(enabled: bool) -> None:
    """Debug mode also rejects NaN/Inf inputs (a full pass over every input, so off by default).
    The environment variable VISION_MAMBA_DEBUG=1 turns it on at import."""
    global _debug
    _debug = bool(enabled)


def debug_enabled() -> bool:
    """Whether debug mode is on (the models check their inputs for NaN/Inf under the same switch)."""
    return _debug


_flop_counters: list[list[int]] = []


@contextlib.contextmanager
def count_flops():
    """Count the selective scans' FLOPs inside the block: `with count_flops() as c: model(x)`, then
    `c[0]`.  9 per state update (batch * dim * L * N), mamba_ssm's count for the scan, plus dim * L
    each for the D skip and the z gate; torch.utils.flop_counter counts the matmuls around it."""
    counter = [0]
    _flop_counters.append(counter)
    try:
        yield counter
    finally:
        _flop_counters.remove(counter)


def _scan_flops(u, A, D, z) -> int:
    batch, dim, length = u.shape
    return batch * dim * length * (9 * A.shape[1] + (D is not None) + (z is not None))


def _triton_backend() -> Callable:
    # imports triton: only when asked for.  Through the custom ops (triton_op.py), so that
    # torch.compile / torch.export see one opaque op with a fake implementation, not the launcher
    from .triton_op import selective_scan_triton_op
    return selective_scan_triton_op


BACKENDS: dict[str, Callable[[], Callable]] = {
    "reference": lambda: selective_scan_reference,
    "torch": lambda: selective_scan_torch,
    "triton": _triton_backend,
}


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def _check(u, delta, A, B, C, D, z, delta_bias, backend) -> None:
    def fail(msg: str):
        raise ValueError(f"selective_scan: {msg}")

    if not isinstance(u, torch.Tensor) or u.dim() != 3:
        fail(f"u must be a tensor of shape (batch, dim, L), got "
             f"{_shape(u) if isinstance(u, torch.Tensor) else type(u).__name__}")
    named = [("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C), ("D", D), ("z", z),
             ("delta_bias", delta_bias)]
    for name, t in named:
        if not (isinstance(t, torch.Tensor) or (t is None and name in ("D", "z", "delta_bias"))):
            fail(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    batch, dim, length = u.shape
    if length == 0 or batch == 0 or dim == 0:
        fail(f"u has shape {_shape(u)}, expected (batch, dim, L) with every size > 0")
    for name, t in (("u", u), ("delta", delta), ("B", B), ("C", C), ("z", z)):
        if t is not None and t.dtype not in _FLOAT_INPUTS:
            fail(f"{name} has dtype {t.dtype}, expected one of float16, bfloat16, float32, float64")
    if _shape(delta) != _shape(u):
        fail(f"delta has shape {_shape(delta)}, expected {(batch, dim, length)} (the shape of u)")
    if A.dim() != 2 or A.shape[0] != dim:
        fail(f"A has shape {_shape(A)}, expected (dim={dim}, N)")
    n = A.shape[1]
    for name, t in (("A", A), ("D", D), ("delta_bias", delta_bias)):
        if t is not None and t.dtype not in _FLOAT_PARAMS:
            fail(f"{name} has dtype {t.dtype}, expected float32 (or float64); parameters are kept in fp32")
    for name, t in (("B", B), ("C", C)):
        if t.dim() == 3:
            if _shape(t) != (batch, n, length):
                fail(f"{name} has shape {_shape(t)}, expected (batch={batch}, N={n}, L={length}) "
                     f"or (batch, G, N, L)")
        elif t.dim() == 4:
            g = t.shape[1]
            if t.shape[0] != batch or t.shape[2] != n or t.shape[3] != length or g == 0:
                fail(f"{name} has shape {_shape(t)}, expected (batch={batch}, G, N={n}, L={length})")
            if dim % g:
                fail(f"{name} has shape {_shape(t)}: G={g} groups do not divide dim={dim} "
                     f"(expected dim % G == 0)")
        else:
            fail(f"{name} has shape {_shape(t)}, expected (batch={batch}, G, N={n}, L={length}) "
                 f"or (batch, N, L)")
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None and _shape(t) != (dim,):
            fail(f"{name} has shape {_shape(t)}, expected (dim={dim},)")
    if z is not None and _shape(z) != _shape(u):
        fail(f"z has shape {_shape(z)}, expected {(batch, dim, length)} (the shape of u)")
    for name, t in named:
        if t is not None and t.device != u.device:
            fail(f"{name} is on {t.device}, expected {u.device} (the device of u)")
    if backend == "triton":
        if u.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            fail(f"backend 'triton' needs CUDA tensors (u is on {u.device}); "
                 f"use backend='torch' or set TRITON_INTERPRET=1")
        if n not in TRITON_STATE_SIZES:
            fail(f"A has shape {_shape(A)}: backend 'triton' supports N in {TRITON_STATE_SIZES}, got N={n}")
        for name, t in named:
            if t is not None and t.dtype == torch.float64:
                fail(f"{name} has dtype float64: backend 'triton' takes float16/bfloat16/float32 "
                     f"(parameters float32); use backend='torch' or 'reference' for float64")
    if _debug:
        for name, t in named:
            if t is not None and not torch.isfinite(t).all():
                fail(f"{name} (shape {_shape(t)}) contains NaN or Inf (debug mode)")


def resolve_backend(backend: str, u: torch.Tensor, A: torch.Tensor) -> str:
    """'auto': triton for CUDA tensors it supports (N, dtype), torch otherwise."""
    if backend == "auto":
        fits_triton = (isinstance(u, torch.Tensor) and u.device.type == "cuda" and u.dtype != torch.float64
                       and isinstance(A, torch.Tensor) and A.dim() == 2 and A.shape[1] in TRITON_STATE_SIZES)
        return "triton" if fits_triton else "torch"
    if backend not in BACKENDS:
        raise ValueError(f"selective_scan: backend={backend!r}, expected 'auto' or one of {sorted(BACKENDS)}")
    return backend


def prefers_token_major(batch: int, dim: int, length: int, n: int, *, backend: str = "auto",
                        device: torch.device | str = "cuda") -> bool:
    """Whether an inference caller (no backward) should hand `selective_scan` token-major inputs:
    (batch, L, dim) tensors viewed as (batch, dim, L), with B / C (batch, L, G * N) views likewise.  True
    where the Triton backend runs and picks its blocked kernel for them, which reads them in place and
    writes y token-major too, so the caller's transposes around the scan go away."""
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"prefers_token_major: backend={backend!r}, expected 'auto' or one of {sorted(BACKENDS)}")
    device = torch.device(device)
    if backend == "auto":
        if device.type != "cuda" or n not in TRITON_STATE_SIZES:
            return False
    elif backend != "triton":
        return False
    from .triton_fused import choose_kernel   # imports triton: only when the triton backend is in play
    return choose_kernel(batch, dim, length, n, inference=True, token_major=True) == "blocked"


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, *, reverse: bool = False, backend: str = "auto"):
    """Selective scan with the semantics of mamba_ssm's `selective_scan_fn`.

    u, delta: (batch, dim, L); A: (dim, N) fp32; B, C: (batch, G, N, L) with dim % G == 0, or (batch, N, L);
    D, delta_bias: (dim,) fp32; z: (batch, dim, L) or None.

        dt  = softplus(delta + delta_bias) if delta_softplus else delta + delta_bias
        h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * u_t ;  y_t = <C_t, h_t> + D * u_t ;  y *= silu(z)

    State math runs in fp32 (fp64 for fp64 inputs); y has u's dtype. With return_last_state the final
    state (batch, dim, N) in the compute dtype comes back too. backend: 'auto' (triton on CUDA, torch
    elsewhere), 'reference', 'torch' or 'triton'.  reverse=True scans t = L-1 .. 0: the same as flipping
    every time axis of the inputs and of y (the last state is then the one after t = 0); the Triton
    backend reads the inputs backwards in place, the others flip around the scan.
    """
    name = resolve_backend(backend, u, A)
    _check(u, delta, A, B, C, D, z, delta_bias, name)
    fn = BACKENDS[name]()
    for counter in _flop_counters:
        counter[0] += _scan_flops(u, A, D, z)
    if name == "triton":
        return fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
                  return_last_state=return_last_state, reverse=bool(reverse))
    if reverse:
        u, delta, B, C, z = (t.flip(-1) if t is not None else None for t in (u, delta, B, C, z))
    out = fn(u, delta, A, B, C, D=D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus,
             return_last_state=return_last_state)
    if not reverse:
        return out
    return (out[0].flip(-1), out[1]) if return_last_state else out.flip(-1)
