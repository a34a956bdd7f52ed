"""`selective_scan` rejects bad arguments with a ValueError that names the argument and the shapes.

Every case starts from a valid call (batch 2, dim 4, L 5, N 4, G 2, all options) and breaks one thing.
"""
from __future__ import annotations

import pytest
import torch

from conftest import make_inputs
from vision_mamba.kernels import selective_scan
from vision_mamba.kernels.selective import api

BATCH, DIM, L, N, G = 2, 4, 5, 4, 2


def base():
    return make_inputs(BATCH, DIM, L, N, G, seed=0)


def r(*shape, dtype=torch.float32):
    return torch.randn(*shape).to(dtype)


# id, replaced arguments, backend, substrings the message must contain
CASES = [
    # u
    ("u-rank2", dict(u=r(DIM, L)), "torch", ["u", "(4, 5)", "(batch, dim, L)"]),
    ("u-rank4", dict(u=r(BATCH, DIM, L, 1)), "torch", ["u", "(2, 4, 5, 1)", "(batch, dim, L)"]),
    ("u-not-tensor", dict(u=[[[1.0]]]), "torch", ["u", "list", "(batch, dim, L)"]),
    ("u-int", dict(u=torch.ones(BATCH, DIM, L, dtype=torch.int64)), "torch", ["u", "int64", "float32"]),
    ("u-bool", dict(u=torch.ones(BATCH, DIM, L, dtype=torch.bool)), "torch", ["u", "bool", "float32"]),
    ("u-complex", dict(u=r(BATCH, DIM, L, dtype=torch.complex64)), "torch", ["u", "complex64", "float32"]),
    # empty sizes (everything else consistent)
    ("empty-batch", dict(u=r(0, DIM, L), delta=r(0, DIM, L), z=r(0, DIM, L), B=r(0, G, N, L), C=r(0, G, N, L)),
     "torch", ["u", "(0, 4, 5)", "> 0"]),
    ("empty-L", dict(u=r(BATCH, DIM, 0), delta=r(BATCH, DIM, 0), z=r(BATCH, DIM, 0), B=r(BATCH, G, N, 0),
                     C=r(BATCH, G, N, 0)), "torch", ["u", "(2, 4, 0)", "> 0"]),
    # delta
    ("delta-shape", dict(delta=r(BATCH, DIM, L + 1)), "torch", ["delta", "(2, 4, 6)", "(2, 4, 5)"]),
    ("delta-transposed", dict(delta=r(BATCH, L, DIM)), "torch", ["delta", "(2, 5, 4)", "(2, 4, 5)"]),
    ("delta-int", dict(delta=torch.ones(BATCH, DIM, L, dtype=torch.int32)), "torch", ["delta", "int32"]),
    # A
    ("A-wrong-dim", dict(A=-torch.ones(DIM + 1, N)), "torch", ["A", "(5, 4)", "dim=4"]),
    ("A-rank1", dict(A=-torch.ones(DIM)), "torch", ["A", "(4,)", "(dim=4, N)"]),
    ("A-rank3", dict(A=-torch.ones(1, DIM, N)), "torch", ["A", "(1, 4, 4)", "(dim=4, N)"]),
    ("A-int", dict(A=-torch.ones(DIM, N, dtype=torch.int64)), "torch", ["A", "int64", "float32"]),
    ("A-complex", dict(A=-torch.ones(DIM, N, dtype=torch.complex64)), "torch", ["A", "complex64", "float32"]),
    ("A-bf16", dict(A=-torch.ones(DIM, N, dtype=torch.bfloat16)), "torch", ["A", "bfloat16", "float32"]),
    # B / C
    ("B-wrong-L", dict(B=r(BATCH, G, N, L + 1)), "torch", ["B", "(2, 2, 4, 6)", "L=5"]),
    ("B-wrong-N", dict(B=r(BATCH, G, N + 1, L)), "torch", ["B", "(2, 2, 5, 5)", "N=4"]),
    ("B-3d-wrong-N", dict(B=r(BATCH, N - 1, L)), "torch", ["B", "(2, 3, 5)", "N=4"]),
    ("B-3d-wrong-L", dict(B=r(BATCH, N, L - 1)), "torch", ["B", "(2, 4, 4)", "L=5"]),
    ("B-rank2", dict(B=r(N, L)), "torch", ["B", "(4, 5)", "(batch, N, L)"]),
    ("B-rank5", dict(B=r(BATCH, G, N, L, 1)), "torch", ["B", "(2, 2, 4, 5, 1)", "(batch=2, G, N=4, L=5)"]),
    ("B-G-not-dividing-dim", dict(B=r(BATCH, 3, N, L)), "torch", ["B", "(2, 3, 4, 5)", "G=3", "dim=4"]),
    ("B-G-zero", dict(B=r(BATCH, 0, N, L)), "torch", ["B", "(2, 0, 4, 5)"]),
    ("B-int", dict(B=torch.ones(BATCH, G, N, L, dtype=torch.int64)), "torch", ["B", "int64"]),
    ("C-wrong-batch", dict(C=r(BATCH + 1, G, N, L)), "torch", ["C", "(3, 2, 4, 5)", "batch=2"]),
    ("C-3d-wrong-batch", dict(C=r(1, N, L)), "torch", ["C", "(1, 4, 5)", "batch=2"]),
    ("C-G-not-dividing-dim", dict(C=r(BATCH, 8, N, L)), "torch", ["C", "(2, 8, 4, 5)", "G=8", "dim=4"]),
    ("C-wrong-N", dict(C=r(BATCH, G, 2, L)), "torch", ["C", "(2, 2, 2, 5)", "N=4"]),
    # D / delta_bias / z
    ("D-wrong-length", dict(D=r(DIM - 1)), "torch", ["D", "(3,)", "(dim=4,)"]),
    ("D-2d", dict(D=r(DIM, 1)), "torch", ["D", "(4, 1)", "(dim=4,)"]),
    ("D-scalar", dict(D=torch.tensor(1.0)), "torch", ["D", "()", "(dim=4,)"]),
    ("D-int", dict(D=torch.ones(DIM, dtype=torch.int64)), "torch", ["D", "int64", "float32"]),
    ("delta_bias-wrong-length", dict(delta_bias=r(DIM + 1)), "torch", ["delta_bias", "(5,)", "(dim=4,)"]),
    ("delta_bias-per-step", dict(delta_bias=r(DIM, L)), "torch", ["delta_bias", "(4, 5)", "(dim=4,)"]),
    ("delta_bias-fp16", dict(delta_bias=r(DIM, dtype=torch.float16)), "torch", ["delta_bias", "float16"]),
    ("z-shape", dict(z=r(BATCH, DIM, L - 1)), "torch", ["z", "(2, 4, 4)", "(2, 4, 5)"]),
    ("z-rank2", dict(z=r(DIM, L)), "torch", ["z", "(4, 5)", "(2, 4, 5)"]),
    ("z-int", dict(z=torch.ones(BATCH, DIM, L, dtype=torch.int64)), "torch", ["z", "int64"]),
    # backend selection
    ("unknown-backend", {}, "cuda", ["backend", "'cuda'", "'reference'", "'torch'", "'triton'"]),
    ("unknown-backend-case", {}, "Torch", ["backend", "'Torch'"]),
    ("triton-N3", dict(A=-torch.ones(DIM, 3), B=r(BATCH, G, 3, L), C=r(BATCH, G, 3, L)), "triton",
     ["A", "(4, 3)", "N=3", "triton", "(1, 2, 4, 8, 16, 32, 64)"]),
    ("triton-N128", dict(A=-torch.ones(DIM, 128), B=r(BATCH, G, 128, L), C=r(BATCH, G, 128, L)), "triton",
     ["A", "(4, 128)", "N=128", "triton"]),
    ("triton-fp64", dict(u=r(BATCH, DIM, L, dtype=torch.float64), delta=r(BATCH, DIM, L, dtype=torch.float64)),
     "triton", ["triton", "float64"]),
    ("triton-fp64-param", dict(D=r(DIM, dtype=torch.float64)), "triton", ["triton", "float64"]),
]


@pytest.mark.parametrize("replace,backend,needles", [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_bad_input_raises(replace, backend, needles, monkeypatch):
    # the triton checks must be reached on a CPU-only machine too (nothing is launched: the error
    # comes first), and must not depend on whether the suite runs with the interpreter
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    args = base()
    args.update(replace)
    with pytest.raises(ValueError) as info:
        selective_scan(**args, delta_softplus=True, backend=backend)
    msg = str(info.value)
    assert msg.startswith("selective_scan:"), msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


def test_valid_base_call_passes():
    """The starting point of every case above is itself accepted (so each case tests one thing)."""
    y = selective_scan(**base(), delta_softplus=True, backend="torch")
    assert y.shape == (BATCH, DIM, L)


def test_triton_without_cuda_or_interpreter(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match=r"backend 'triton' needs CUDA tensors \(u is on cpu\)"):
        selective_scan(**base(), backend="triton")


@pytest.mark.gpu
def test_device_mismatch():
    args = base()
    args = {k: (v.cuda() if k != "A" else v) for k, v in args.items()}
    with pytest.raises(ValueError, match=r"A is on cpu, expected cuda:0 \(the device of u\)"):
        selective_scan(**args, backend="torch")


# ----------------------------------------------------------------------------------------------
# NaN / Inf: rejected in debug mode only
# ----------------------------------------------------------------------------------------------
def _poison(args, name, value):
    t = args[name].clone()
    t.view(-1)[t.numel() // 2] = value
    args[name] = t
    return args


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"])
def test_debug_mode_rejects_non_finite(debug_mode, name, value):
    args = _poison(base(), name, value)
    with pytest.raises(ValueError) as info:
        selective_scan(**args, delta_softplus=True, backend="torch")
    msg = str(info.value)
    assert f"{name} (shape {tuple(args[name].shape)}) contains NaN or Inf" in msg, msg
    assert "debug" in msg


def test_debug_mode_accepts_finite(debug_mode):
    y = selective_scan(**base(), delta_softplus=True, backend="reference")
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_without_debug_mode_nan_does_not_raise(no_debug_mode, backend):
    args = _poison(base(), "u", float("nan"))
    y = selective_scan(**args, delta_softplus=True, backend=backend)
    assert torch.isnan(y).any()  # propagated, not rejected


def test_debug_mode_is_off_by_default():
    """Guards against a test leaking debug mode into the rest of the suite."""
    import os
    if os.environ.get("VISION_MAMBA_DEBUG", "0") not in ("", "0"):
        pytest.skip("VISION_MAMBA_DEBUG turns it on")
    assert api._debug is False


# ----------------------------------------------------------------------------------------------
# arguments other than u that are not tensors at all
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,value", [
    pytest.param("delta", None, id="delta-None"),
    pytest.param("A", None, id="A-None"),
    pytest.param("B", None, id="B-None"),
    pytest.param("D", [1.0, 2.0, 3.0, 4.0], id="D-list"),
])
def test_non_tensor_argument_raises_value_error(name, value):
    args = base()
    args[name] = value
    with pytest.raises(ValueError, match=name):
        selective_scan(**args, backend="torch")
