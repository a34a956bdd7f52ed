"""Shared pieces of the selective-scan tests: environment set-up, input factory, error metric, markers.

Without a CUDA device the Triton backend can only run under Triton's interpreter, which reads
TRITON_INTERPRET when triton is first imported.  `import torch` does not import triton, so checking
for CUDA here and setting the variable at conftest import time (before any test module imports the
kernels) is early enough.
"""
from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import math  # noqa: E402
from typing import Optional  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Hypothesis: reproducible by default (CI must not flake on a lucky draw); HYPOTHESIS_PROFILE=explore
# draws fresh examples each run and many more of them.
settings.register_profile("default", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", deadline=None, derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
EXPLORE = os.environ.get("HYPOTHESIS_PROFILE") == "explore"


def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:  # pragma: no cover - triton missing or broken
        return False
    return True


TRITON_OK = _triton_available() and (HAS_CUDA or os.environ.get("TRITON_INTERPRET") == "1")
# Triton runs compiled on a GPU, interpreted (on CPU tensors) otherwise.
TRITON_DEVICE = "cuda" if HAS_CUDA and os.environ.get("TRITON_INTERPRET") != "1" else "cpu"


def pytest_configure(config):
    # also declared in setup.cfg; repeated so that the suite works from any rootdir
    config.addinivalue_line("markers", "gpu: needs a CUDA device (skipped without one)")
    config.addinivalue_line("markers", "triton_interpret: runs Triton kernels under TRITON_INTERPRET=1 on the CPU")
    config.addinivalue_line("markers", "slow: long-running tests")
    config.addinivalue_line("markers", "mmseg: the mmsegmentation plug-in (skipped without mmseg)")
    config.addinivalue_line("markers", "nnunet: the nnU-Net v2 trainers (skipped without nnunetv2)")


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    skip_triton = pytest.mark.skip(reason="triton unavailable (not installed, or no CUDA and no TRITON_INTERPRET=1)")
    for item in items:
        if "gpu" in item.keywords and not HAS_CUDA:
            item.add_marker(skip_gpu)
        if "triton_interpret" in item.keywords and not TRITON_OK:
            item.add_marker(skip_triton)


# ----------------------------------------------------------------------------------------------
# helpers (plain functions, also exposed as session fixtures so hypothesis tests can use them)
# ----------------------------------------------------------------------------------------------
ARG_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(batch: int, dim: int, length: int, n: int, groups: Optional[int] = 1, *,
                groups_C: Optional[int] | str = "same", D: bool = True, z: bool = True,
                delta_bias: bool = True, softplus: bool = True, dtype: torch.dtype = torch.float32,
                param_dtype: torch.dtype = torch.float32, seed: int = 0, device="cpu") -> dict:
    """Random selective-scan inputs with realistic magnitudes.

    groups=None gives 3-D B (batch, N, L); an int G gives (batch, G, N, L).  groups_C defaults to
    the same layout as B.  Optional inputs that are switched off are left out of the dict.
    Values are drawn in fp32 and then cast, so the same seed gives the same (rounded) values in
    every dtype.
    """
    if groups_C == "same":
        groups_C = groups
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    def rand(*shape):
        return torch.rand(*shape, generator=g)

    def bc(gr):
        return randn(batch, n, length) if gr is None else randn(batch, gr, n, length)

    out = dict(
        u=randn(batch, dim, length).to(dtype),
        delta=(randn(batch, dim, length) * 0.5 if softplus else rand(batch, dim, length) * 0.5).to(dtype),
        A=(-torch.exp(randn(dim, n))).to(param_dtype),
        B=bc(groups).to(dtype),
        C=bc(groups_C).to(dtype),
    )
    d_vals, z_vals, b_vals = randn(dim), randn(batch, dim, length), randn(dim) * 0.5
    if D:
        out["D"] = d_vals.to(param_dtype)
    if z:
        out["z"] = z_vals.to(dtype)
    if delta_bias:
        out["delta_bias"] = b_vals.to(param_dtype)
        if not softplus:  # keep dt = delta + bias mostly positive, as it is in a real model
            out["delta_bias"] = b_vals.abs().to(param_dtype)
    return {k: v.to(device) for k, v in out.items()}


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in fp64 (0 when both are exactly 0)."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    assert a.shape == b.shape, (a.shape, b.shape)
    num = (a - b).norm().item()
    den = b.norm().item()
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def upcast(inputs: dict, dtype=torch.float64) -> dict:
    """Every tensor in `inputs` cast to `dtype` (floats only), on the CPU, detached."""
    return {k: v.detach().cpu().to(dtype) for k, v in inputs.items()}


def cotangents(y_shape, last_shape, loss_on: str, seed: int = 1234):
    """Fixed random cotangents (gy, glast) for the loss <y, gy> + <last, glast>, fp64 on the CPU; None
    where that output is not in the loss.  The values are bf16-representable, so every backend (fp16,
    bf16, fp32, fp64) sees exactly the same ones."""
    g = torch.Generator().manual_seed(seed)
    gy = gl = None
    if loss_on in ("y", "both"):
        gy = torch.randn(y_shape, generator=g, dtype=torch.float64).to(torch.bfloat16).double()
    if last_shape is not None and loss_on in ("last", "both"):
        gl = torch.randn(last_shape, generator=g, dtype=torch.float64).to(torch.bfloat16).double()
    return gy, gl


TIME_AXIS_INPUTS = ("u", "delta", "z", "B", "C")


def reversed_reference(**kw):
    """The reverse scan (t = L-1 .. 0) by definition: every time axis flipped in, the fp64 reference
    forward scan, y flipped back (the last state is the state after the scan, unflipped)."""
    from vision_mamba.kernels.selective import selective_scan_reference
    flip = {k: (v.flip(-1) if k in TIME_AXIS_INPUTS and v is not None else v) for k, v in kw.items()}
    out = selective_scan_reference(**flip)
    return (out[0].flip(-1), out[1]) if isinstance(out, tuple) else out.flip(-1)


def run_scan(fn, inputs: dict, *, softplus: bool, return_last_state: bool, loss_on: str = "both",
             seed: int = 1234, grads: bool = True, **kwargs):
    """Forward through `fn` (a backend function or `selective_scan`) and, when `grads`, a backward of
    <y, gy> (+ <last, glast>) with the cotangents of `cotangents`.

    loss_on: "y", "last" or "both" (the last two only with return_last_state).
    Returns (y, last or None, {name: grad}) all detached; a grad is None where autograd gave none.
    """
    # detach, not clone: clone() makes strided (non-dense) tensors contiguous, hiding layout bugs
    leaves = {k: v.detach().requires_grad_(grads) for k, v in inputs.items()}
    out = fn(**leaves, delta_softplus=softplus, return_last_state=return_last_state, **kwargs)
    y, last = out if return_last_state else (out, None)
    if not grads:
        return y.detach(), None if last is None else last.detach(), {}
    gy, gl = cotangents(y.shape, None if last is None else last.shape, loss_on, seed)
    loss = 0
    if gy is not None:
        loss = loss + (y * gy.to(y.device, y.dtype)).sum()
    if gl is not None:
        loss = loss + (last * gl.to(last.device, last.dtype)).sum()
    loss.backward()
    return (y.detach(), None if last is None else last.detach(),
            {k: v.grad for k, v in leaves.items()})


def param_grad_scales(inputs: dict, *, softplus: bool, return_last_state: bool, loss_on: str = "both",
                      seed: int = 1234) -> dict:
    """For the parameters A, D, delta_bias (whose gradients are sums over batch and time): the sum over
    (batch, t) of the absolute values of the per-step terms, in fp64, as {name: (abs_sum, signed_sum)};
    signed_sum is the gradient itself, an independent check of the reference.

    A few-element parameter gradient can cancel to far below its terms, and then no fp32 kernel can
    match it to a relative 1e-5; its error is instead bounded by ~eps * this scale.  Computed with an
    independent fp64 loop in which every (batch, t) step has its own copy of the parameters.
    """
    x = upcast(inputs)
    u, delta, B, C = x["u"], x["delta"], x["B"], x["C"]
    batch, dim, length = u.shape
    n = x["A"].shape[1]
    own = lambda p: p.reshape(1, dim, 1, *p.shape[1:]).expand(batch, dim, length, *p.shape[1:]).clone()  # noqa: E731
    A = own(x["A"]).requires_grad_()                                    # (b, d, L, N)
    D = own(x["D"]).requires_grad_() if "D" in x else None                # (b, d, L)
    bias = own(x["delta_bias"]).requires_grad_() if "delta_bias" in x else None

    def per_channel(m):  # (b, [G,] N, L) -> (b, d, N, L): channel d reads group d // (dim // G)
        m = m[:, None] if m.dim() == 3 else m
        return m.repeat_interleave(dim // m.shape[1], dim=1)

    B, C = per_channel(B), per_channel(C)
    h = torch.zeros(batch, dim, n, dtype=torch.float64)
    ys = []
    for t in range(length):
        raw = delta[:, :, t] + (bias[:, :, t] if bias is not None else 0.0)
        dt = torch.nn.functional.softplus(raw) if softplus else raw
        h = torch.exp(dt[..., None] * A[:, :, t]) * h + (dt * u[:, :, t])[..., None] * B[..., t]
        y = (h * C[..., t]).sum(-1)
        if D is not None:
            y = y + D[:, :, t] * u[:, :, t]
        if "z" in x:
            y = y * torch.nn.functional.silu(x["z"][:, :, t])
        ys.append(y)
    y = torch.stack(ys, -1)
    gy, gl = cotangents(y.shape, h.shape if return_last_state else None, loss_on, seed)
    loss = (y * gy).sum() if gy is not None else 0.0
    if gl is not None:
        loss = loss + (h * gl).sum()
    params = {"A": A, "D": D, "delta_bias": bias}
    used = {k: p for k, p in params.items() if p is not None}
    grads = torch.autograd.grad(loss, list(used.values()), allow_unused=True)
    zero = lambda k: torch.zeros_like(used[k][0, :, 0])  # noqa: E731
    return {k: (g.abs().sum((0, 2)) if g is not None else zero(k), g.sum((0, 2)) if g is not None else zero(k))
            for k, g in zip(used, grads)}


@pytest.fixture(scope="session")
def make_inputs_fn():
    return make_inputs


@pytest.fixture(scope="session")
def rel_err_fn():
    return rel_err


def _debug_set_to(enabled):
    from vision_mamba.kernels.selective import api
    before = api._debug
    api.set_debug(enabled)
    try:
        yield
    finally:
        api.set_debug(before)


@pytest.fixture
def debug_mode():
    """Turns the API's debug mode on for one test and always restores the previous setting."""
    yield from _debug_set_to(True)


@pytest.fixture
def no_debug_mode():
    """Debug mode off for one test (even when VISION_MAMBA_DEBUG=1 turned it on), then restored."""
    yield from _debug_set_to(False)
