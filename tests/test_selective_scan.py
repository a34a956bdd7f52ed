"""Selective scan: hand-computed values, backends against the reference (forward and every gradient),
low precision, gradcheck, numerical stability, dispatch.

Ground truth is the sequential `reference` backend run in fp64 on the (upcast) inputs, so a measured
relative error is the error of the backend under test alone.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import EXPLORE, TRITON_DEVICE, make_inputs, param_grad_scales, rel_err, run_scan, upcast
from vision_mamba.kernels import selective_scan
from vision_mamba.kernels.selective import (TRITON_STATE_SIZES, api, selective_scan_reference,
                                            selective_scan_torch)

FP32_TOL = 1e-5
LOWP_TOL = 1e-2

triton_interpret = pytest.mark.triton_interpret
TRITON_N = tuple(n for n in TRITON_STATE_SIZES if n <= 16)


def examples(n: int) -> int:
    return n * 10 if EXPLORE else n


def backend_fn(name: str, chunk_size: int | None = None):
    """selective_scan bound to one backend (public API, argument checks included); with a chunk_size,
    the torch backend function itself (the API does not take one)."""
    if chunk_size is not None:
        assert name == "torch"
        return functools.partial(selective_scan_torch, chunk_size=chunk_size)
    return functools.partial(selective_scan, backend=name)


def reference_fp64(inputs, *, softplus, return_last_state, loss_on="both", grads=True):
    return run_scan(selective_scan_reference, upcast(inputs), softplus=softplus,
                    return_last_state=return_last_state, loss_on=loss_on, grads=grads)


def assert_close_to_reference(got, ref, tol, what="", scales=None):
    """Relative errors of y, last and every gradient below `tol`.  `scales` ({param: sum of |terms|},
    see conftest.param_grad_scales) admits a parameter gradient that cancelled far below its terms when
    its error is below tol/10 of that scale instead (the fp32 rounding of the terms alone is ~eps * it)."""
    y, last, grads = got
    y_ref, last_ref, grads_ref = ref
    errs = {"y": rel_err(y.cpu(), y_ref)}
    if last_ref is not None:
        errs["last"] = rel_err(last.cpu(), last_ref)
    for name, g_ref in grads_ref.items():
        g = grads.get(name)
        if g_ref is None:  # the input does not reach the loss: no gradient, or an exact zero one
            assert g is None or not g.any(), (what, name)
            continue
        assert g is not None, (what, name, "no gradient")
        errs["d" + name] = rel_err(g.cpu(), g_ref)
    bad = {k: v for k, v in errs.items() if not v < tol}
    for name in list(bad):
        scale = (scales or {}).get(name[1:])
        if scale is not None and name != "y":
            diff = (grads[name[1:]].cpu().double() - grads_ref[name[1:]]).norm().item()
            err_vs_terms = diff / max(scale.norm().item(), 1e-300)
            if err_vs_terms < tol / 10:
                del bad[name]
            else:
                bad[name] = (bad[name], f"vs sum of |terms|: {err_vs_terms:.2e}")
    assert not bad, f"{what}: relative errors above {tol}: {bad} (all: {errs})"
    return errs


# ----------------------------------------------------------------------------------------------
# hand-computed values
# ----------------------------------------------------------------------------------------------
HAND = dict(
    u=[1.0, -0.5, 2.0],
    delta=[0.3, -0.2, 0.1],
    delta_bias=0.25,
    A=[-1.0, -0.5],
    B=[[0.5, -1.0, 0.25], [1.0, 0.5, -0.75]],   # (N, L)
    C=[[1.0, 0.5, -0.5], [-0.25, 1.5, 0.75]],   # (N, L)
    D=0.5,
    z=[0.2, -1.0, 1.5],
)


def hand_expected():
    """The recurrence in plain Python floats: returns (y[L], h_last[N])."""
    h = [0.0, 0.0]
    ys = []
    for t in range(3):
        x = HAND["delta"][t] + HAND["delta_bias"]
        dt = math.log1p(math.exp(x))  # softplus
        for n in range(2):
            h[n] = math.exp(dt * HAND["A"][n]) * h[n] + dt * HAND["B"][n][t] * HAND["u"][t]
        y = sum(HAND["C"][n][t] * h[n] for n in range(2)) + HAND["D"] * HAND["u"][t]
        zt = HAND["z"][t]
        ys.append(y * zt / (1.0 + math.exp(-zt)))
    return ys, h


def hand_inputs(dtype, device="cpu", grouped=True):
    t = lambda v, dt=dtype: torch.tensor(v, dtype=dt, device=device)  # noqa: E731
    B, C = t(HAND["B"])[None], t(HAND["C"])[None]            # (1, N, L)
    if grouped:
        B, C = B[:, None], C[:, None]                           # (1, 1, N, L)
    pdt = torch.float64 if dtype == torch.float64 else torch.float32
    return dict(u=t(HAND["u"])[None, None], delta=t(HAND["delta"])[None, None], A=t(HAND["A"], pdt)[None],
                B=B, C=C, D=t([HAND["D"]], pdt), z=t(HAND["z"])[None, None],
                delta_bias=t([HAND["delta_bias"]], pdt))


def test_hand_computed_expectation_is_sane():
    ys, h = hand_expected()
    # first step by hand: dt0 = softplus(0.55); h = dt0*B[:,0]*u0; y0 = (<C0,h> + 0.5) * silu(0.2)
    dt0 = math.log(1 + math.exp(0.55))
    y0 = (1.0 * dt0 * 0.5 - 0.25 * dt0 * 1.0 + 0.5) * 0.2 / (1 + math.exp(-0.2))
    assert ys[0] == pytest.approx(y0, rel=1e-14)
    assert all(math.isfinite(v) for v in ys + h)


HAND_BACKENDS = [
    pytest.param("reference", torch.float64, {}, id="reference-fp64"),
    pytest.param("reference", torch.float32, {}, id="reference-fp32"),
    pytest.param("torch", torch.float64, {}, id="torch-fp64"),
    pytest.param("torch", torch.float32, {}, id="torch-fp32"),
    pytest.param("torch", torch.float32, {"chunk_size": 1}, id="torch-chunk1"),
    pytest.param("torch", torch.float32, {"chunk_size": 2}, id="torch-chunk2"),
    pytest.param("auto", torch.float32, {}, id="auto-fp32"),
    pytest.param("triton", torch.float32, {}, id="triton-fp32", marks=triton_interpret),
]


@pytest.mark.parametrize("grouped", [True, False], ids=["BC4d", "BC3d"])
@pytest.mark.parametrize("backend,dtype,kwargs", HAND_BACKENDS)
def test_hand_computed(backend, dtype, kwargs, grouped):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    ins = hand_inputs(dtype, device, grouped)
    y, last = backend_fn(backend, **kwargs)(**ins, delta_softplus=True, return_last_state=True)
    ys, h = hand_expected()
    assert y.dtype == dtype and y.shape == (1, 1, 3)
    assert last.dtype == dtype and last.shape == (1, 1, 2)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert y.flatten().tolist() == pytest.approx(ys, rel=tol, abs=tol)
    assert last.flatten().tolist() == pytest.approx(h, rel=tol, abs=tol)


def _group_case(backend, device):
    ins = make_inputs(2, 6, 9, 4, 3, D=True, z=True, delta_bias=True, softplus=True, seed=7, device=device)
    fn = backend_fn(backend)
    y = fn(**ins, delta_softplus=True)
    dim, G = 6, 3
    for d in range(dim):
        g = d // (dim // G)  # channel d reads group d // (dim // G), not d % G
        one = {k: v[:, d:d + 1] if k in ("u", "delta", "z") else v[d:d + 1] if k in ("A", "D", "delta_bias")
               else v[:, g] for k, v in ins.items()}
        y_d = fn(**one, delta_softplus=True)
        assert rel_err(y[:, d:d + 1], y_d) < FP32_TOL, (backend, d)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_group_semantics(backend):
    """A grouped scan equals, channel by channel, a 3-D-B/C scan with that channel's group."""
    _group_case(backend, "cpu")


@triton_interpret
def test_group_semantics_triton():
    _group_case("triton", TRITON_DEVICE)


# ----------------------------------------------------------------------------------------------
# property tests against the reference
# ----------------------------------------------------------------------------------------------
@st.composite
def scan_cases(draw, n_choices, g_choices, max_dim=8, max_len=80, max_work=None):
    batch = draw(st.integers(1, 2))
    gb = draw(st.sampled_from(g_choices))
    gc = draw(st.sampled_from([g for g in g_choices if math.lcm(gb or 1, g or 1) <= max_dim]))
    step = math.lcm(gb or 1, gc or 1)
    dim = step * draw(st.integers(1, max_dim // step))
    n = draw(st.sampled_from(n_choices))
    if max_work is not None:  # keeps the Triton interpreter's cost ~ batch*dim*L*N bounded
        max_len = max(1, min(max_len, max_work // (batch * dim * n)))
    length = draw(st.integers(1, max_len))
    opts = {k: draw(st.booleans()) for k in ("D", "z", "delta_bias", "softplus", "return_last_state")}
    loss_on = draw(st.sampled_from(["both", "y", "last"])) if opts["return_last_state"] else "y"
    seed = draw(st.integers(0, 2**31 - 1))
    return dict(batch=batch, dim=dim, length=length, n=n, groups=gb, groups_C=gc, loss_on=loss_on,
                seed=seed, **opts)


def _check_case(case, fn, device="cpu", tol=FP32_TOL):
    ins = make_inputs(case["batch"], case["dim"], case["length"], case["n"], case["groups"],
                      groups_C=case["groups_C"], D=case["D"], z=case["z"], delta_bias=case["delta_bias"],
                      softplus=case["softplus"], seed=case["seed"], device=device)
    kw = dict(softplus=case["softplus"], return_last_state=case["return_last_state"], loss_on=case["loss_on"])
    got = run_scan(fn, ins, **kw)
    assert got[0].dtype == torch.float32 and got[0].shape == ins["u"].shape
    if case["return_last_state"]:
        assert got[1].dtype == torch.float32
        assert got[1].shape == (case["batch"], case["dim"], case["n"])
    for name, g in got[2].items():
        assert g is None or (g.dtype == ins[name].dtype and g.shape == ins[name].shape), name
    ref = reference_fp64(ins, **kw)
    scales = {}
    for name, (abs_sum, signed_sum) in param_grad_scales(ins, **kw).items():
        # the independent per-step loop agrees with the reference (fp64 vs fp64)
        g_ref = ref[2][name] if ref[2][name] is not None else torch.zeros_like(signed_sum)
        assert rel_err(signed_sum, g_ref) < 1e-10 or (signed_sum - g_ref).abs().max() < 1e-12 * (1 + abs_sum.max()), name
        scales[name] = abs_sum
    return assert_close_to_reference(got, ref, tol, what=str(case), scales=scales)


@settings(max_examples=examples(15))
@given(case=scan_cases(n_choices=(1, 2, 3, 4, 5, 8, 16), g_choices=(None, 1, 2, 3, 4)))
def test_torch_matches_reference(case):
    _check_case(case, backend_fn("torch"))


@settings(max_examples=examples(15))
@given(case=scan_cases(n_choices=(1, 2, 3, 4, 8, 16), g_choices=(None, 1, 2, 4)),
       chunk=st.integers(1, 90))
def test_torch_chunk_sizes_match_reference(case, chunk):
    _check_case(case, backend_fn("torch", chunk_size=chunk))


@settings(max_examples=examples(10))
@given(case=scan_cases(n_choices=(1, 2, 3, 4, 8), g_choices=(None, 1, 2, 3, 4)))
def test_reference_fp32_matches_fp64(case):
    """The reference itself in fp32 (it is the backend users get for debugging)."""
    _check_case(case, backend_fn("reference"))


@triton_interpret
@settings(max_examples=examples(8), suppress_health_check=[HealthCheck.too_slow])
@given(case=scan_cases(n_choices=TRITON_N, g_choices=(None, 1, 2, 4), max_len=70, max_work=2048))
def test_triton_matches_reference(case):
    _check_case(case, backend_fn("triton"), device=TRITON_DEVICE)


@triton_interpret
@pytest.mark.parametrize("length", [1, 16, 17, 32, 33, 64, 65, 128, 129])
def test_triton_chunk_boundaries(length):
    """Sequence lengths at and just past the chunk sizes a Triton launch may use (powers of two)."""
    case = dict(batch=1, dim=2, length=length, n=2, groups=1, groups_C=None, D=True, z=True,
                delta_bias=True, softplus=True, return_last_state=True, loss_on="both", seed=length)
    _check_case(case, backend_fn("triton"), device=TRITON_DEVICE)


GROUP_COMBOS = [  # dim, G of B, G of C (None: 3-D), N, L
    (8, 2, 4, 4, 9), (8, None, 4, 2, 20), (4, 4, 1, 8, 5), (8, 8, 2, 1, 33), (6, 3, None, 2, 7),
]


@pytest.mark.parametrize("dim,gb,gc,n,length", GROUP_COMBOS, ids=lambda v: str(v))
@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=triton_interpret)])
def test_mixed_group_counts(backend, dim, gb, gc, n, length):
    """B and C may use different group counts (or one of them 3-D)."""
    if backend == "triton" and n not in TRITON_STATE_SIZES:
        pytest.skip("N not supported by triton")
    case = dict(batch=2, dim=dim, length=length, n=n, groups=gb, groups_C=gc, D=True, z=True,
                delta_bias=True, softplus=True, return_last_state=True, loss_on="both", seed=dim + n)
    _check_case(case, backend_fn(backend), device=TRITON_DEVICE if backend == "triton" else "cpu")


# ----------------------------------------------------------------------------------------------
# layouts the backends must not assume away
# ----------------------------------------------------------------------------------------------
def _dense_permuted(ins):
    """The same values in the layouts a model hands over: u/delta/z as (batch, L, dim) transposed,
    B/C from (batch, L, G, N), A from (N, dim).  Every tensor is dense but not contiguous."""
    out = {}
    for k, v in ins.items():
        if k in ("u", "delta", "z"):
            out[k] = v.transpose(1, 2).contiguous().transpose(1, 2)
        elif k in ("B", "C"):
            out[k] = v.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)
        elif k == "A":
            out[k] = v.t().contiguous().t()
        else:
            out[k] = v
    return out


def _strided(ins, names):
    """`names` as every other element of a buffer twice as long (a filler of 100 in between)."""
    out = dict(ins)
    for k in names:
        v = ins[k]
        buf = torch.full((*v.shape, 2), 100.0, dtype=v.dtype, device=v.device)
        buf[..., 0] = v
        out[k] = buf[..., 0]
    return out


LAYOUTS = {
    "dense-permuted": _dense_permuted,
    "strided-seq": lambda ins: _strided(ins, ("u", "delta", "z", "B", "C")),
    "strided-A": lambda ins: _strided(ins, ("A",)),
    "strided-D-bias": lambda ins: _strided(ins, ("D", "delta_bias")),
}

def _layout_case(fn, layout, device):
    ins = make_inputs(2, 4, 20, 4, 2, seed=11, device=device)
    odd = LAYOUTS[layout](ins)
    for k in ins:
        assert torch.equal(odd[k], ins[k]), k
    assert any(not odd[k].is_contiguous() for k in ins)
    kw = dict(softplus=True, return_last_state=True)
    got = run_scan(fn, odd, **kw)
    ref = reference_fp64(ins, **kw)
    assert_close_to_reference(got, ref, FP32_TOL, what=f"layout {layout}")


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_noncontiguous_inputs(backend, layout):
    _layout_case(backend_fn(backend), layout, "cpu")


@triton_interpret
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_noncontiguous_inputs_triton(layout):
    _layout_case(backend_fn("triton"), layout, TRITON_DEVICE)


# ----------------------------------------------------------------------------------------------
# half precision
# ----------------------------------------------------------------------------------------------
LOWP = [pytest.param(torch.bfloat16, id="bf16"), pytest.param(torch.float16, id="fp16")]
LOWP_BACKENDS = [pytest.param("torch", id="torch"), pytest.param("reference", id="reference"),
                 pytest.param("triton", id="triton", marks=triton_interpret)]


@pytest.mark.parametrize("backend", LOWP_BACKENDS)
@pytest.mark.parametrize("dtype", LOWP)
def test_half_precision(backend, dtype):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    ins = make_inputs(2, 4, 37, 4, 2, dtype=dtype, seed=5, device=device)
    kw = dict(softplus=True, return_last_state=True)
    y, last, grads = run_scan(backend_fn(backend), ins, **kw)
    assert y.dtype == dtype
    assert last.dtype == torch.float32  # state math runs in fp32
    for name, g in grads.items():
        assert g.dtype == ins[name].dtype, name
    # the reference sees the same rounded values, upcast: what is left is the backend's own rounding
    y_ref, last_ref, grads_ref = reference_fp64(ins, **kw)
    assert rel_err(y.cpu(), y_ref) < LOWP_TOL
    assert rel_err(last.cpu(), last_ref) < LOWP_TOL
    for name in grads_ref:
        assert rel_err(grads[name].cpu(), grads_ref[name]) < 2 * LOWP_TOL, name


# ----------------------------------------------------------------------------------------------
# gradcheck in fp64
# ----------------------------------------------------------------------------------------------
GRADCHECK_FNS = [
    pytest.param(selective_scan_reference, id="reference"),
    pytest.param(selective_scan_torch, id="torch"),
    pytest.param(lambda *a, **k: selective_scan_torch(*a, **k, chunk_size=2), id="torch-chunk2"),
    pytest.param(lambda *a, **k: selective_scan(*a, **k, backend="torch"), id="api-torch"),
]


@pytest.mark.parametrize("fn", GRADCHECK_FNS)
@pytest.mark.parametrize("options", [True, False], ids=["all-options", "no-options"])
def test_gradcheck_fp64(fn, options):
    ins = make_inputs(2, 4, 5, 3, 2 if options else None, D=options, z=options, delta_bias=options,
                      softplus=options, dtype=torch.float64, param_dtype=torch.float64, seed=3)
    names = list(ins)
    tensors = tuple(ins[k].requires_grad_() for k in names)

    def f(*args):
        return fn(**dict(zip(names, args)), delta_softplus=options, return_last_state=options)

    assert torch.autograd.gradcheck(f, tensors, eps=1e-6, atol=1e-7, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# numerical stability
# ----------------------------------------------------------------------------------------------
def _huge_case(kind, device):
    ins = make_inputs(1, 4, 40, 4, 1, seed=13, device=device)
    if kind == "all":        # every step: dt ~ 50, dt*A ~ -2500
        ins["delta"] = torch.full_like(ins["delta"], 50.0)
        ins["A"] = torch.full_like(ins["A"], -50.0)
    elif kind == "spikes":   # some steps reset the state, some channels decay very fast
        ins["delta"][:, :, ::7] = 50.0
        ins["A"][:2] = -50.0
    elif kind == "slow-underflow":  # each step moderate, the product over a chunk underflows fp32
        ins["delta"] = torch.full_like(ins["delta"], 5.0)
        ins["A"] = torch.full_like(ins["A"], -3.0)
    return ins


STABILITY_BACKENDS = [pytest.param("torch", id="torch"), pytest.param("reference", id="reference"),
                      pytest.param("triton", id="triton", marks=triton_interpret)]


@pytest.mark.parametrize("backend", STABILITY_BACKENDS)
@pytest.mark.parametrize("kind", ["all", "spikes", "slow-underflow"])
def test_huge_decay_is_finite_and_exact(backend, kind):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    ins = _huge_case(kind, device)
    kw = dict(softplus=True, return_last_state=True)
    y, last, grads = run_scan(backend_fn(backend), ins, **kw)
    assert torch.isfinite(y).all() and torch.isfinite(last).all()
    for name, g in grads.items():
        assert torch.isfinite(g).all(), name
    y_ref, last_ref, grads_ref = reference_fp64(ins, **kw)
    assert rel_err(y.cpu(), y_ref) < FP32_TOL
    assert rel_err(last.cpu(), last_ref) < FP32_TOL
    for name, g_ref in grads_ref.items():
        assert rel_err(grads[name].cpu(), g_ref) < FP32_TOL, name


@pytest.mark.parametrize("backend", ["torch", "reference",
                                     pytest.param("triton", marks=triton_interpret)])
@pytest.mark.parametrize("dt_a", [10.0, 15.0])
def test_dA_accuracy_fast_decay(backend, dt_a):
    """Each channel's dA to fp32 accuracy, also in a channel whose per-step decay is exp(-dt_a)."""
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    ins = make_inputs(1, 2, 40, 4, 1, D=False, z=False, delta_bias=False, softplus=False, seed=3, device=device)
    ins["delta"] = torch.ones_like(ins["delta"])
    ins["A"][1] = -dt_a  # channel 0 keeps its ordinary decays, channel 1 forgets fast
    kw = dict(softplus=False, return_last_state=False)
    _, _, grads = run_scan(backend_fn(backend), ins, **kw)
    _, _, grads_ref = reference_fp64(ins, **kw)
    for d in range(2):
        assert rel_err(grads["A"][d].cpu(), grads_ref["A"][d]) < FP32_TOL, f"dA of channel {d}"
    assert rel_err(grads["delta"].cpu(), grads_ref["delta"]) < FP32_TOL


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # interpreter:
# triton's softplus evaluates e/(w-1) = 0/0 in the branch tl.where discards (harmless)
@pytest.mark.parametrize("backend", ["torch", "reference", pytest.param("triton", marks=triton_interpret)])
def test_softplus_regimes(backend):
    """dt = softplus(delta) from far below 0 (dt ~ 1e-13) across the threshold of 20 (dt = delta)."""
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    values = torch.tensor([-30.0, -10.0, -1.0, 0.0, 1.0, 19.9, 20.0, 20.1, 30.0])
    ins = make_inputs(1, 2, len(values), 2, 1, delta_bias=False, seed=21, device=device)
    ins["delta"] = values.expand_as(ins["delta"]).contiguous().to(device)
    ins["A"] = ins["A"] * 0.01  # keep some memory even at dt = 30
    kw = dict(softplus=True, return_last_state=True)
    got = run_scan(backend_fn(backend), ins, **kw)
    assert_close_to_reference(got, reference_fp64(ins, **kw), FP32_TOL, what="softplus regimes")


# ----------------------------------------------------------------------------------------------
# loss on one output only; gradients for a subset of the inputs
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=triton_interpret)])
def test_only_some_inputs_require_grad(backend):
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    ins = make_inputs(1, 4, 12, 2, 2, seed=17, device=device)
    needs = {"u", "B"}
    leaves = {k: v.clone().requires_grad_(k in needs) for k, v in ins.items()}
    y = selective_scan(**leaves, delta_softplus=True, backend=backend)
    y.sum().backward()
    ref = {k: v.detach().cpu().double().requires_grad_(k in needs) for k, v in ins.items()}
    selective_scan_reference(**ref, delta_softplus=True).sum().backward()
    for k in ins:
        if k in needs:
            assert rel_err(leaves[k].grad.cpu(), ref[k].grad) < FP32_TOL, k
        else:
            assert leaves[k].grad is None, k


# ----------------------------------------------------------------------------------------------
# dispatch
# ----------------------------------------------------------------------------------------------
def test_auto_picks_torch_on_cpu(monkeypatch):
    ins = make_inputs(1, 2, 10, 4, 1, seed=2)
    calls = []

    def spy(*a, **k):
        calls.append(True)
        return selective_scan_torch(*a, **k)

    monkeypatch.setitem(api.BACKENDS, "torch", lambda: spy)
    y = selective_scan(**ins, delta_softplus=True)
    assert calls == [True]
    assert torch.equal(y, selective_scan_torch(**ins, delta_softplus=True))
    assert api.resolve_backend("auto", ins["u"], ins["A"]) == "torch"
    # fp64 and odd N are never sent to triton either
    assert api.resolve_backend("auto", ins["u"].double(), ins["A"]) == "torch"
    assert api.resolve_backend("auto", ins["u"], ins["A"][:, :3]) == "torch"


def test_backend_names():
    assert set(api.BACKENDS) == {"reference", "torch", "triton"}
    for name in ("reference", "torch", "triton"):
        assert api.resolve_backend(name, None, None) == name


def test_count_flops_counts_every_call_inside_the_block():
    from vision_mamba.kernels.selective import count_flops
    ins = make_inputs(2, 4, 10, 8, 2, seed=5)
    with count_flops() as outer:
        selective_scan(**ins, backend="torch")
        with count_flops() as inner:
            selective_scan(**ins, backend="torch")
    selective_scan(**ins, backend="torch")
    per_call = 2 * 4 * 10 * (9 * 8 + (ins.get("D") is not None) + (ins.get("z") is not None))
    assert inner[0] == per_call
    assert outer[0] == 2 * per_call


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_autocast_leaves_the_scan_in_its_compute_dtype(backend):
    # under CPU bf16 autocast the torch backend's matmuls ran in bf16 and its backward then mixed
    # bf16 and fp32 operands ("expected scalar type Float but found BFloat16"); the scan ignores autocast
    torch.manual_seed(0)
    b, d, L, N = 2, 16, 40, 4
    leaves = [torch.randn(b, d, L), torch.randn(b, d, L), torch.randn(b, N, L), torch.randn(b, N, L),
              torch.randn(b, d, L)]
    A = -torch.rand(d, N)

    def run(autocast: bool):
        args = [t.clone().requires_grad_() for t in leaves]
        u, dt, B, C, z = args
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            y = selective_scan(u, dt, A, B, C, None, z, None, True, backend=backend)
        y.float().pow(2).sum().backward()
        return y, [a.grad for a in args]

    y_ac, g_ac = run(True)
    y, g = run(False)
    assert y_ac.dtype == torch.float32
    assert rel_err(y_ac, y) < 1e-6
    for a, b_ in zip(g_ac, g):
        assert rel_err(a, b_) < 1e-6


def test_prefers_token_major_needs_the_triton_backend_and_names_a_bad_one():
    from vision_mamba.kernels.selective import prefers_token_major
    # only the Triton backend reads token-major views in place; 'auto' picks it only for CUDA tensors
    assert not prefers_token_major(8, 768, 6085, 16, backend="auto", device="cpu")
    assert not prefers_token_major(8, 768, 6085, 16, backend="torch", device="cuda")
    with pytest.raises(ValueError, match="backend='tritn'"):
        prefers_token_major(8, 768, 6085, 16, backend="tritn")
