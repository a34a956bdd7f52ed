"""SSD scan (Mamba-2): every backend against the sequential reference (forward, final state, every
gradient), fp64 gradcheck, the duality with `selective_scan`, numerical stability, bad input.

Ground truth is the `reference` backend run in fp64 on upcast copies of the inputs, so a measured
relative error is the error of the backend under test alone.  The Triton cases run compiled on a
GPU and under Triton's interpreter on the CPU (small shapes: the interpreter is slow).
"""
from __future__ import annotations

import functools

import pytest
import torch

from conftest import TRITON_DEVICE, rel_err
from vision_mamba.kernels import selective_scan, set_debug, ssd_scan
from vision_mamba.kernels.ssd import api, ssd_scan_reference, ssd_scan_torch

FP32_TOL = 1e-5
LOWP_TOL = 1e-2
GRAD_NAMES = ("x", "dt", "A", "B", "C", "D", "z", "dt_bias", "initial_states")


def make_ssd_inputs(batch, length, heads, headdim, groups, dstate, *, D="head", z=True, dt_bias=True,
                    initial_states=False, softplus=True, dtype=torch.float32, seed=0, device="cpu") -> dict:
    """Random inputs with a model's magnitudes; D: None, "head" (heads,) or "channel" (heads, headdim).
    Drawn in fp32 then cast, so a seed gives the same (rounded) values in every dtype."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    dt = randn(batch, length, heads) * 0.5
    out = dict(x=randn(batch, length, heads, headdim).to(dtype),
               dt=(dt if softplus else dt.abs()).to(dtype),
               A=-torch.exp(randn(heads)),
               B=randn(batch, length, groups, dstate).to(dtype),
               C=randn(batch, length, groups, dstate).to(dtype))
    param = torch.float64 if dtype == torch.float64 else torch.float32
    out["A"] = out["A"].to(param)
    if D is not None:
        out["D"] = randn(*((heads,) if D == "head" else (heads, headdim))).to(param)
    if z:
        out["z"] = randn(batch, length, heads, headdim).to(dtype)
    if dt_bias:
        b = randn(heads) * 0.5
        out["dt_bias"] = (b if softplus else b.abs()).to(param)
    if initial_states:
        out["initial_states"] = randn(batch, heads, headdim, dstate).to(param)
    return {k: v.to(device) for k, v in out.items()}


def run(fn, inputs: dict, chunk_size: int, *, softplus: bool, final_in_loss: bool = True, seed: int = 1234):
    """y, the final state and the gradient of every input for the loss <y, gy> + <final, gf> with fixed
    random cotangents (values representable in bf16, so every dtype sees the same ones)."""
    leaves = {k: v.detach().requires_grad_() for k, v in inputs.items()}
    y, final = fn(**leaves, chunk_size=chunk_size, dt_softplus=softplus, return_final_states=True)
    g = torch.Generator().manual_seed(seed)
    gy = torch.randn(y.shape, generator=g).to(torch.bfloat16).to(y.device, y.dtype)
    loss = (y * gy).sum()
    if final_in_loss:
        gf = torch.randn(final.shape, generator=g).to(torch.bfloat16).to(final.device, final.dtype)
        loss = loss + (final * gf).sum()
    loss.backward()
    return y.detach(), final.detach(), {k: v.grad for k, v in leaves.items()}


def reference_fp64(inputs, chunk_size, **kw):
    up = {k: v.detach().cpu().double() for k, v in inputs.items()}
    return run(ssd_scan_reference, up, chunk_size, **kw)


def assert_matches(got, ref, tol, what=""):
    (y, final, grads), (y_ref, final_ref, grads_ref) = got, ref
    errs = {"y": rel_err(y.cpu(), y_ref), "final": rel_err(final.cpu(), final_ref)}
    for name, g_ref in grads_ref.items():
        assert grads[name] is not None, (what, name, "no gradient")
        errs["d" + name] = rel_err(grads[name].cpu(), g_ref)
    bad = {k: v for k, v in errs.items() if not v < tol}
    assert not bad, f"{what}: relative errors above {tol}: {bad} (all: {errs})"


def backend(name):
    return functools.partial(ssd_scan, backend=name)


# ----------------------------------------------------------------------------------------------
# torch backend against the reference, fp64 gradcheck
# ----------------------------------------------------------------------------------------------
# (batch, L, heads, headdim, groups, dstate, chunk_size, options)
TORCH_CASES = [
    (2, 37, 4, 3, 2, 5, 8, dict(initial_states=True)),                 # chunk does not divide L
    (1, 32, 2, 4, 1, 3, 8, dict(D="channel", softplus=False)),         # chunk divides L
    (2, 20, 6, 2, 3, 4, 64, dict(z=False, dt_bias=False, D=None)),     # one chunk longer than L
    (1, 9, 2, 2, 2, 1, 1, dict(initial_states=True)),                  # chunk of one step, dstate 1
    (1, 50, 4, 2, 4, 2, 7, dict(initial_states=True, D="channel")),    # a group per head
]


@pytest.mark.parametrize("batch,length,heads,headdim,groups,dstate,chunk,opts", TORCH_CASES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, FP32_TOL)])
def test_torch_matches_reference(batch, length, heads, headdim, groups, dstate, chunk, opts, dtype, tol):
    softplus = opts.get("softplus", True)
    inputs = make_ssd_inputs(batch, length, heads, headdim, groups, dstate, dtype=dtype, **opts)
    got = run(backend("torch"), inputs, chunk, softplus=softplus)
    assert got[0].dtype == dtype
    assert_matches(got, reference_fp64(inputs, chunk, softplus=softplus), tol, f"torch {dtype} T={chunk}")


def test_result_does_not_depend_on_the_chunk_size():
    inputs = make_ssd_inputs(1, 45, 2, 3, 1, 4, initial_states=True, dtype=torch.float64)
    results = [run(ssd_scan_torch, inputs, chunk, softplus=True) for chunk in (1, 4, 16, 45, 100)]
    for got in results[1:]:
        assert_matches(got, results[0], 1e-11, "chunk sizes")


@pytest.mark.parametrize("fn", [ssd_scan_reference, ssd_scan_torch], ids=["reference", "torch"])
def test_gradcheck_fp64(fn):
    inputs = make_ssd_inputs(1, 7, 2, 2, 1, 2, D="channel", initial_states=True, dtype=torch.float64, seed=3)
    names = list(inputs)

    def f(*tensors):
        y, final = fn(**dict(zip(names, tensors)), chunk_size=3, dt_softplus=True, return_final_states=True)
        return y, final

    leaves = tuple(inputs[k].detach().requires_grad_() for k in names)
    # fast mode (random projections of the Jacobian): the full check costs ~20 s on two busy cores
    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-7, fast_mode=True)


# ----------------------------------------------------------------------------------------------
# triton backend (compiled on a GPU, interpreted on the CPU)
# ----------------------------------------------------------------------------------------------
# (batch, L, heads, headdim, groups, dstate, chunk_size, options, dtype)
TRITON_CASES = [
    # several chunks, the last one partial; two groups of two heads; every option
    pytest.param(1, 40, 4, 8, 2, 5, 16, dict(initial_states=True, D="channel"), torch.float32, id="all-options"),
    # chunk boundaries at the end; no optional input; 16-wide headdim and dstate (no padding of the tiles)
    pytest.param(2, 32, 2, 16, 1, 16, 16, dict(z=False, dt_bias=False, D=None, softplus=False), torch.float32,
                 id="no-options"),
    # VMamba-like: dstate 1, a group per head, one chunk longer than L
    pytest.param(1, 21, 3, 4, 3, 1, 32, dict(z=False), torch.float32, id="dstate1"),
    pytest.param(1, 24, 2, 8, 1, 4, 16, dict(initial_states=True), torch.bfloat16, id="bf16"),
]


@pytest.mark.triton_interpret
@pytest.mark.parametrize("batch,length,heads,headdim,groups,dstate,chunk,opts,dtype", TRITON_CASES)
def test_triton_matches_reference(batch, length, heads, headdim, groups, dstate, chunk, opts, dtype):
    softplus = opts.get("softplus", True)
    inputs = make_ssd_inputs(batch, length, heads, headdim, groups, dstate, dtype=dtype, device=TRITON_DEVICE,
                             **opts)
    got = run(backend("triton"), inputs, chunk, softplus=softplus)
    assert got[0].dtype == dtype and got[1].dtype == torch.float32
    tol = FP32_TOL if dtype == torch.float32 else LOWP_TOL
    assert_matches(got, reference_fp64(inputs, chunk, softplus=softplus), tol, f"triton {dtype}")


# ----------------------------------------------------------------------------------------------
# the duality: SSD is a selective scan whose A is one scalar per head
# ----------------------------------------------------------------------------------------------
def as_selective(inputs: dict) -> dict:
    """The same problem in selective_scan's layout: channel d = h * headdim + p of (batch, dim, L), dt
    repeated over a head's channels, A (dim, N) filled with the head's scalar, B/C grouped."""
    x = inputs["x"]
    batch, length, heads, headdim = x.shape
    dstate = inputs["B"].shape[-1]

    def channels(t):   # (b, L, H, P) -> (b, H * P, L)
        return t.permute(0, 2, 3, 1).reshape(batch, heads * headdim, length)

    out = dict(u=channels(x), delta=channels(inputs["dt"][..., None].expand(x.shape)),
               A=inputs["A"][:, None, None].expand(heads, headdim, dstate).reshape(heads * headdim, dstate),
               B=inputs["B"].permute(0, 2, 3, 1), C=inputs["C"].permute(0, 2, 3, 1))
    if "D" in inputs:
        D = inputs["D"]
        out["D"] = (D[:, None].expand(heads, headdim) if D.dim() == 1 else D).reshape(-1)
    if "z" in inputs:
        out["z"] = channels(inputs["z"])
    if "dt_bias" in inputs:
        out["delta_bias"] = inputs["dt_bias"][:, None].expand(heads, headdim).reshape(-1)
    return out


@pytest.mark.parametrize("name,dtype,tol", [
    ("reference", torch.float64, 1e-12),
    ("torch", torch.float64, 1e-10),
    pytest.param("triton", torch.float32, FP32_TOL, marks=pytest.mark.triton_interpret),
])
def test_duality_with_selective_scan(name, dtype, tol):
    device = TRITON_DEVICE if name == "triton" else "cpu"
    small = name == "triton"   # the interpreter is slow
    inputs = make_ssd_inputs(1 if small else 2, 35, 4, 4, 2, 16 if small else 3, dtype=dtype, device=device, seed=5)
    y, final, grads = run(backend(name), inputs, 16, softplus=True)
    # the selective scan, on leaves of its own layout, mapped back to the SSD layout
    sel_in = {k: v.detach().cpu().double().requires_grad_() for k, v in inputs.items()}
    sel_y, sel_last = selective_scan(**as_selective(sel_in), delta_softplus=True, return_last_state=True,
                                     backend="reference")
    batch, length, heads, headdim = inputs["x"].shape
    sel_y = sel_y.view(batch, heads, headdim, length).permute(0, 3, 1, 2)
    sel_last = sel_last.view(final.shape)
    g = torch.Generator().manual_seed(1234)
    gy = torch.randn(sel_y.shape, generator=g).to(torch.bfloat16).double()
    gf = torch.randn(sel_last.shape, generator=g).to(torch.bfloat16).double()
    ((sel_y * gy).sum() + (sel_last * gf).sum()).backward()
    assert_matches((y, final, grads), (sel_y.detach(), sel_last.detach(), {k: v.grad for k, v in sel_in.items()}),
                   tol, f"{name} vs selective_scan")


# ----------------------------------------------------------------------------------------------
# numerics and dispatch
# ----------------------------------------------------------------------------------------------
def test_long_sequence_decays_stay_accurate():
    # over 4000 steps the log-decays add up to ~-800: exponents formed as differences of such prefix
    # sums carry fp32 errors of ~eps * 800 (measured: 3.6e-6 relative error in y and the final state);
    # summing the terms each decay spans keeps the error at fp32 rounding (measured: 9e-8)
    inputs = make_ssd_inputs(1, 4000, 2, 2, 1, 2, D=None, z=False, dt_bias=False, seed=7)
    inputs["dt"] = torch.full_like(inputs["dt"], 0.125)
    with torch.no_grad():
        y, final = ssd_scan_torch(**inputs, chunk_size=4, return_final_states=True)
        y_ref, final_ref = ssd_scan_reference(**{k: v.double() for k, v in inputs.items()},
                                              return_final_states=True)
    assert rel_err(y, y_ref) < 1e-6
    assert rel_err(final, final_ref) < 1e-6


def test_torch_backend_ignores_autocast():
    inputs = make_ssd_inputs(1, 30, 2, 4, 1, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = ssd_scan(**inputs, chunk_size=8, dt_softplus=True, backend="torch")
    y_ref = ssd_scan_reference(**{k: v.double() for k, v in inputs.items()}, dt_softplus=True)
    assert y.dtype == torch.float32 and rel_err(y, y_ref) < FP32_TOL


def test_auto_picks_torch_off_cuda():
    inputs = make_ssd_inputs(1, 8, 2, 2, 1, 2)
    assert api.resolve_backend("auto", inputs["x"], inputs["B"], 64) == "torch"
    assert api.resolve_backend("auto", inputs["x"], inputs["B"], 24) == "torch"


def test_final_state_alone_has_gradients():
    inputs = make_ssd_inputs(1, 12, 2, 2, 1, 3, initial_states=True, dtype=torch.float64)
    leaves = {k: v.detach().requires_grad_() for k, v in inputs.items()}
    _, final = ssd_scan(**leaves, chunk_size=4, dt_softplus=True, return_final_states=True, backend="torch")
    final.sum().backward()
    ref = {k: v.detach().requires_grad_() for k, v in inputs.items()}
    ssd_scan_reference(**ref, dt_softplus=True, return_final_states=True)[1].sum().backward()
    for name in ("x", "dt", "A", "B", "initial_states"):
        assert rel_err(leaves[name].grad, ref[name].grad) < 1e-10, name
    # C only reads the state out: no gradient, or an exact zero one
    assert all(g is None or not g.any() for g in (ref["C"].grad, leaves["C"].grad))


# ----------------------------------------------------------------------------------------------
# bad input: a ValueError naming the argument, what it got and what was expected
# ----------------------------------------------------------------------------------------------
def _set(**changes):
    def edit(inputs):
        inputs.update(changes)
        return inputs
    return edit


BAD = [
    ("x 3-D", lambda i: _set(x=i["x"][0])(i), {}, r"x has shape \(12, 4, 2\), expected \(batch, L, heads, headdim\)"),
    ("x int", lambda i: _set(x=i["x"].long())(i), {}, r"x has dtype torch.int64, expected one of float16"),
    ("dt shape", lambda i: _set(dt=i["dt"][:, :5])(i), {}, r"dt has shape \(2, 5, 4\), expected \(batch=2, L=12, heads=4\)"),
    ("A per channel", lambda i: _set(A=i["A"][:, None].expand(4, 3))(i), {},
     r"A has shape \(4, 3\), expected \(heads=4,\): one scalar decay per head"),
    ("A half", lambda i: _set(A=i["A"].half())(i), {}, r"A has dtype torch.float16, expected float32"),
    ("B 3-D", lambda i: _set(B=i["B"][:, :, 0])(i), {}, r"B has shape \(2, 12, 3\), expected \(batch=2, L=12, ngroups, dstate\)"),
    ("groups", lambda i: _set(B=i["B"].repeat(1, 1, 3, 1), C=i["C"].repeat(1, 1, 3, 1))(i), {},
     r"ngroups=6 does not divide heads=4"),
    ("C shape", lambda i: _set(C=i["C"][..., :2])(i), {}, r"C has shape \(2, 12, 2, 2\), expected \(2, 12, 2, 3\)"),
    ("D shape", lambda i: _set(D=i["D"][:3])(i), {}, r"D has shape \(3,\), expected \(heads=4,\) or \(heads=4, headdim=2\)"),
    ("z shape", lambda i: _set(z=i["z"][..., :1])(i), {}, r"z has shape \(2, 12, 4, 1\), expected \(2, 12, 4, 2\)"),
    ("dt_bias shape", lambda i: _set(dt_bias=i["dt_bias"][:2])(i), {}, r"dt_bias has shape \(2,\), expected \(heads=4,\)"),
    ("initial_states", lambda i: _set(initial_states=torch.zeros(2, 4, 2, 5))(i), {},
     r"initial_states has shape \(2, 4, 2, 5\), expected \(batch=2, heads=4, headdim=2, dstate=3\)"),
    ("B list", lambda i: _set(B=i["B"].tolist())(i), {}, r"B must be a torch.Tensor, got list"),
    ("chunk 0", lambda i: i, dict(chunk_size=0), r"chunk_size=0, expected a positive int"),
    ("chunk float", lambda i: i, dict(chunk_size=16.0), r"chunk_size=16.0, expected a positive int"),
    ("chunk bool", lambda i: i, dict(chunk_size=True), r"chunk_size=True, expected a positive int"),
    ("backend", lambda i: i, dict(backend="cuda"), r"backend='cuda', expected 'auto' or one of"),
    ("triton chunk", lambda i: i, dict(backend="triton", chunk_size=24),
     r"chunk_size=24: backend 'triton' supports chunk_size in \(16, 32, 64, 128\)"),
    ("triton fp64", lambda i: {k: v.double() for k, v in i.items()}, dict(backend="triton"),
     r"x has dtype float64: backend 'triton' takes float16/bfloat16/float32"),
    ("triton headdim", lambda i: _set(x=torch.zeros(2, 12, 4, 130), z=None, D=None, initial_states=None)(i),
     dict(backend="triton"),
     r"x has shape \(2, 12, 4, 130\): backend 'triton' supports headdim <= 128"),
]


@pytest.mark.parametrize("edit,kwargs,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_names_the_argument(edit, kwargs, message):
    inputs = edit(make_ssd_inputs(2, 12, 4, 2, 2, 3, initial_states=True))
    call = {"chunk_size": 16, "dt_softplus": True, **kwargs}
    if TRITON_DEVICE == "cuda" and call.get("backend") == "triton":
        inputs = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    with pytest.raises(ValueError, match=message):
        ssd_scan(**inputs, **call)


def test_debug_mode_rejects_nan(debug_mode):
    inputs = make_ssd_inputs(1, 6, 2, 2, 1, 2)
    inputs["B"][0, 3, 0, 1] = float("nan")
    with pytest.raises(ValueError, match=r"B \(shape \(1, 6, 1, 2\)\) contains NaN or Inf"):
        ssd_scan(**inputs, chunk_size=4)
    set_debug(False)
    assert torch.isnan(ssd_scan(**inputs, chunk_size=4)).any()   # off: no pass over the inputs


@pytest.mark.gpu
@pytest.mark.parametrize("dstate", [16, 64])
def test_triton_bf16_large_state_gradients_on_gpu(dstate):
    """bf16 inputs with VMamba m2's dstate 64: every gradient within bf16 error of the torch backend on
    fp32 copies (TF32 dots once gave errors of 10-500x here while dstate 16 passed; the interpreter on
    the CPU ignores the dot precision, so only a GPU run can catch it)."""
    g = torch.Generator().manual_seed(0)
    b, L, H, P, G, T = 2, 150, 8, 16, 4, 64
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    ins = dict(x=r(b, L, H, P).bfloat16(), dt=(0.5 * r(b, L, H)).bfloat16(), A=-torch.exp(r(H)),
               B=r(b, L, G, dstate).bfloat16(), C=r(b, L, G, dstate).bfloat16(), D=r(H), dt_bias=0.5 * r(H) - 1)
    weight = torch.linspace(-1, 1, b * L * H * P, device="cuda").view(b, L, H, P)
    grads = {}
    for backend, dtype in (("triton", None), ("torch", torch.float32)):
        leaves = {k: v.to("cuda", dtype or v.dtype).requires_grad_() for k, v in ins.items()}
        y = ssd_scan(**leaves, chunk_size=T, dt_softplus=True, backend=backend)
        (y.float() * weight).sum().backward()
        grads[backend] = {k: v.grad.float() for k, v in leaves.items()}
    for k, ref in grads["torch"].items():
        err = ((grads["triton"][k] - ref).norm() / ref.norm()).item()
        assert err < 2e-2, f"d{k}: rel err {err:.2e} at dstate {dstate}"
