"""Scan orderings: the reference pinned to literal routes, merge the adjoint of scan, the fused Triton
kernels equal to the reference (forward and gradient), and the API's argument checks."""
from __future__ import annotations

import zlib

import pytest
import torch

from conftest import TRITON_DEVICE
from vision_mamba.kernels.orderings import (ORDERINGS, ROUTES, cross_merge, cross_merge_reference, cross_scan,
                                             cross_scan_reference)

# odd, non-square, single row/column, one pixel, and one (33, 40) that spans several Triton tiles
SHAPES = [(2, 3, 5, 7), (1, 2, 7, 4), (2, 1, 1, 9), (1, 2, 6, 1), (1, 1, 1, 1), (1, 1, 33, 40)]
TOLERANCE = {torch.float32: 1e-6, torch.bfloat16: 1e-2, torch.float16: 1e-3}


def _randn(*shape, seed: int, dtype=torch.float32, device="cpu") -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def test_orderings_table():
    assert ROUTES == ORDERINGS == {"unidi": 1, "bidi": 2, "cross2d": 4}


def test_reference_routes_are_the_documented_orders():
    x = torch.arange(6.0).view(1, 1, 2, 3)        # [[0, 1, 2], [3, 4, 5]]
    rows, cols = [0, 1, 2, 3, 4, 5], [0, 3, 1, 4, 2, 5]
    expected = {"unidi": [rows], "bidi": [rows, rows[::-1]],
                "cross2d": [rows, cols, rows[::-1], cols[::-1]]}
    for ordering, routes in expected.items():
        assert cross_scan_reference(x, ordering)[0, :, 0].tolist() == routes


@pytest.mark.parametrize("ordering", sorted(ROUTES))
@pytest.mark.parametrize("shape", SHAPES)
def test_merge_is_adjoint_of_scan(ordering, shape):
    batch, channels, height, width = shape
    x = _randn(*shape, seed=1, dtype=torch.float64)
    y = _randn(batch, ROUTES[ordering], channels, height * width, seed=2, dtype=torch.float64)
    lhs = (cross_scan_reference(x, ordering) * y).sum()
    rhs = (x.flatten(2) * cross_merge_reference(y, ordering, height, width)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def _cotangent(out, seed, rounded_to):
    return _randn(*out.shape, seed=seed, dtype=rounded_to).to(out.device, out.dtype)


def _scan_and_grad(x, ordering, backend, seed, rounded_to):
    x = x.detach().requires_grad_()
    out = cross_scan(x, ordering, backend=backend)
    cot = _cotangent(out, seed, rounded_to)
    (grad,) = torch.autograd.grad(out, x, cot)
    return out, grad


def _merge_and_grad(y, ordering, height, width, backend, seed, rounded_to):
    y = y.detach().requires_grad_()
    out = cross_merge(y, ordering, height, width, backend=backend)
    cot = _cotangent(out, seed, rounded_to)
    (grad,) = torch.autograd.grad(out, y, cot)
    return out, grad


def _assert_matches_reference(fn, inputs, *args, dtype, seed):
    """`fn` through the triton backend on `dtype` inputs vs the reference on the same (rounded) values in
    fp64; the cotangent is drawn in `dtype` too, so both see the same one."""
    got = fn(inputs.to(TRITON_DEVICE, dtype), *args, "triton", seed, dtype)
    want = fn(inputs.to(dtype).double(), *args, "reference", seed, dtype)
    for g, w in zip(got, want):
        assert g.dtype == dtype and g.device.type == torch.device(TRITON_DEVICE).type
        torch.testing.assert_close(g.cpu().double(), w, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@pytest.mark.triton_interpret
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("ordering", sorted(ROUTES))
@pytest.mark.parametrize("shape", SHAPES)
def test_triton_scan_and_merge_match_reference(shape, ordering, dtype):
    batch, channels, height, width = shape
    seed = zlib.crc32(repr((shape, ordering)).encode())
    _assert_matches_reference(_scan_and_grad, _randn(*shape, seed=seed), ordering, dtype=dtype, seed=seed + 1)
    y = _randn(batch, ROUTES[ordering], channels, height * width, seed=seed + 2)
    _assert_matches_reference(_merge_and_grad, y, ordering, height, width, dtype=dtype, seed=seed + 3)


@pytest.mark.triton_interpret
@pytest.mark.parametrize("ordering", sorted(ROUTES))
def test_triton_fp16_and_strided_input(ordering):
    base = _randn(2, 7, 3, 5, seed=7)
    x = base.permute(0, 2, 3, 1)[:, :, :, ::2]   # (2, 3, 5, 4), not contiguous
    _assert_matches_reference(_scan_and_grad, x, ordering, dtype=torch.float16, seed=8)
    y = _randn(2, ROUTES[ordering], 8, 3 * 5, seed=9).transpose(2, 3).contiguous().transpose(2, 3)
    _assert_matches_reference(_merge_and_grad, y[:, :, ::2], ordering, 3, 5, dtype=torch.float16, seed=10)


def _fp32_to_bf16_as_triton_does(t: torch.Tensor) -> torch.Tensor:
    """A GPU rounds to nearest even; Triton's interpreter truncates (its cast_impl for fp32 -> bf16)."""
    if TRITON_DEVICE == "cpu":
        return (t.view(torch.int32) & -65536).view(torch.float32).to(torch.bfloat16)
    return t.to(torch.bfloat16)


@pytest.mark.triton_interpret
def test_triton_merge_sums_in_fp32_and_rounds_once():
    y = _randn(2, 4, 3, 6 * 5, seed=16, dtype=torch.bfloat16)
    exact = cross_merge_reference(y.double(), "cross2d", 6, 5)
    assert torch.equal(exact.float().double(), exact)   # four bf16 values of these sizes add exactly in fp32
    got = cross_merge(y.to(TRITON_DEVICE), "cross2d", 6, 5, backend="triton").cpu()
    assert torch.equal(got, _fp32_to_bf16_as_triton_does(exact.float()))


@pytest.mark.triton_interpret
@pytest.mark.parametrize("ordering", ["unidi", "bidi"])
def test_triton_flat_input(ordering):
    x = _randn(2, 3, 11, seed=11)
    got = cross_scan(x.to(TRITON_DEVICE), ordering, backend="triton")
    torch.testing.assert_close(got.cpu(), cross_scan_reference(x, ordering), rtol=0, atol=0)
    y = _randn(2, ROUTES[ordering], 3, 11, seed=12)
    got = cross_merge(y.to(TRITON_DEVICE), ordering, backend="triton")
    torch.testing.assert_close(got.cpu(), cross_merge_reference(y, ordering), rtol=1e-6, atol=1e-6)


@pytest.mark.triton_interpret
def test_triton_double_backward():
    """Each backward goes through the other autograd Function, so it is differentiable too."""
    x = _randn(1, 2, 3, 4, seed=13, device=TRITON_DEVICE).requires_grad_()
    cot = _randn(1, 4, 2, 12, seed=14, device=TRITON_DEVICE).requires_grad_()
    out = cross_scan(x, "cross2d", backend="triton")
    (gx,) = torch.autograd.grad(out, x, cot, create_graph=True)
    (gcot,) = torch.autograd.grad(gx, cot, torch.ones_like(gx))
    torch.testing.assert_close(gcot, cross_scan_reference(torch.ones_like(x), "cross2d"))


@pytest.mark.triton_interpret
def test_triton_empty_batch():
    x = torch.zeros(0, 3, 4, 5, device=TRITON_DEVICE)
    assert cross_scan(x, "cross2d", backend="triton").shape == (0, 4, 3, 20)
    assert cross_merge(torch.zeros(0, 4, 3, 20, device=TRITON_DEVICE), "cross2d", 4, 5,
                       backend="triton").shape == (0, 3, 20)


def test_auto_on_cpu_is_reference():
    x = _randn(2, 3, 4, 5, seed=15)
    for ordering in ROUTES:
        assert torch.equal(cross_scan(x, ordering), cross_scan_reference(x, ordering))
        y = cross_scan_reference(x, ordering)
        assert torch.equal(cross_merge(y, ordering, 4, 5), cross_merge_reference(y, ordering, 4, 5))


X = torch.zeros(2, 3, 4, 5)
Y4 = torch.zeros(2, 4, 3, 20)


@pytest.mark.parametrize("call, match", [
    (lambda: cross_scan(X, "diagonal"), r"ordering='diagonal', expected one of"),
    (lambda: cross_scan(X[0], "cross2d"), r"x has shape \(3, 4, 5\), expected \(batch, channels, height, width\)"),
    (lambda: cross_scan(X[None], "bidi"), r"x has shape \(1, 2, 3, 4, 5\), expected"),
    (lambda: cross_scan(X.numpy(), "bidi"), r"x must be a torch.Tensor"),
    (lambda: cross_scan(X.long(), "bidi"), r"x has dtype torch.int64"),
    (lambda: cross_scan(X, "bidi", backend="cuda"), r"backend='cuda', expected 'auto' or one of"),
    (lambda: cross_merge(Y4, "bidi"), r"y has shape \(2, 4, 3, 20\), expected \(batch, K=2, channels, L\)"),
    (lambda: cross_merge(Y4[0], "cross2d", 4, 5), r"y has shape \(4, 3, 20\), expected \(batch, K=4"),
    (lambda: cross_merge(Y4, "cross2d"), r"height=None, width=None, expected both \(height \* width == L=20\)"),
    (lambda: cross_merge(Y4, "cross2d", 4), r"height=4, width=None, expected both"),
    (lambda: cross_merge(Y4, "cross2d", 4, 4), r"y has shape \(2, 4, 3, 20\) but height=4, width=4"),
    (lambda: cross_merge(Y4[:, :2], "bidi", 5, 5), r"height \* width == L=20"),
    (lambda: cross_scan(X.double(), "cross2d", backend="triton"), r"x has dtype torch.float64: backend 'triton'"),
    (lambda: cross_merge(Y4.int(), "cross2d", 4, 5), r"y has dtype torch.int32"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_triton_on_cpu_needs_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match=r"backend 'triton' needs CUDA tensors \(x of shape \(2, 3, 4, 5\)"):
        cross_scan(X, "cross2d", backend="triton")
    with pytest.raises(ValueError, match=r"backend 'triton' needs CUDA tensors \(y of shape"):
        cross_merge(Y4, "cross2d", 4, 5, backend="triton")


@pytest.mark.triton_interpret
def test_triton_orderings_are_custom_ops_compile_traces_around():
    """The fused kernels are torch.library custom ops (opcheck: schema, fake shapes, autograd), so dynamo
    captures a scan -> merge round trip as one graph instead of tracing into Triton."""
    import torch._dynamo as dynamo
    from vision_mamba.kernels.orderings.triton_op import cross_merge_op, cross_scan_op
    x = torch.randn(2, 3, 6, 5, device=TRITON_DEVICE, requires_grad=True)
    torch.library.opcheck(cross_scan_op, (x, 4, 6, 5), test_utils=("test_schema", "test_faketensor",
                                                                      "test_autograd_registration"))
    y = torch.randn(2, 4, 3, 30, device=TRITON_DEVICE, requires_grad=True)
    torch.library.opcheck(cross_merge_op, (y, 4, 6, 5), test_utils=("test_schema", "test_faketensor",
                                                                       "test_autograd_registration"))

    def round_trip(x):
        return cross_merge(cross_scan(x, "cross2d", backend="triton") * 2, "cross2d", 6, 5, backend="triton")
    explained = dynamo.explain(round_trip)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    dynamo.reset()


@pytest.mark.triton_interpret
@pytest.mark.parametrize("ordering", ["cross2d", "bidi"])
def test_eager_calls_take_the_functions_traced_calls_the_custom_ops(monkeypatch, ordering):
    """Eager calls run the autograd.Functions, traced ones the custom ops (kernels/_tracing.py): the same
    outputs and gradients (through the adjoint op in each backward)."""
    from vision_mamba.kernels.orderings import triton_op
    ops = []
    for name in ("cross_scan_op", "cross_merge_op"):
        real = getattr(triton_op, name)
        monkeypatch.setattr(triton_op, name, lambda *a, real=real, name=name: ops.append(name) or real(*a))
    x = _randn(2, 3, 6, 5, seed=3, dtype=torch.float32).to(TRITON_DEVICE)
    y = _randn(2, ROUTES[ordering], 3, 30, seed=4, dtype=torch.float32).to(TRITON_DEVICE)

    def run():
        scanned, dx = _scan_and_grad(x, ordering, "triton", 5, torch.float32)
        merged, dy = _merge_and_grad(y, ordering, 6, 5, "triton", 6, torch.float32)
        return scanned, dx, merged, dy
    eager = run()
    assert ops == []
    with monkeypatch.context() as m:
        m.setattr(triton_op, "traced", lambda *tensors: True)
        traced = run()
    assert sorted(ops) == ["cross_merge_op"] * 2 + ["cross_scan_op"] * 2
    for got, want in zip(traced, eager):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
