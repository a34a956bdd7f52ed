"""The compiled Triton backend on a real GPU against the reference, at sizes the interpreter can't reach."""
import pytest
import torch

from vision_mamba.kernels import selective_scan

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SHAPES = [  # batch, dim, L, N, G, with options
    (2, 64, 197, 16, 1, True),
    (3, 96, 1000, 1, 4, False),
    (1, 32, 4097, 16, 1, True),
    (2, 48, 63, 2, 3, True),
    (2, 16, 300, 4, 2, True),
    (1, 16, 129, 8, 1, False),
    (1, 16, 200, 32, 1, True),
    (1, 8, 150, 64, 1, True),
]


def _inputs(batch, dim, length, n, groups, options, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    rnd = lambda *s, dt=dtype: torch.randn(*s, device="cuda", generator=g).to(dt)  # noqa: E731
    args = dict(
        u=rnd(batch, dim, length), delta=rnd(batch, dim, length) * 0.5,
        A=-torch.exp(rnd(dim, n, dt=torch.float32) * 0.5),
        B=rnd(batch, groups, n, length), C=rnd(batch, groups, n, length))
    if options:
        args.update(D=rnd(dim, dt=torch.float32), z=rnd(batch, dim, length),
                    delta_bias=rnd(dim, dt=torch.float32) * 0.5 - 1.0)
    else:
        args["delta"] = args["delta"].abs()
    return {k: v.requires_grad_() for k, v in args.items()}


def _run(backend, inputs, softplus, upcast):
    ins = {k: (v.detach().float() if upcast else v.detach()).requires_grad_() for k, v in inputs.items()}
    y, last = selective_scan(**ins, delta_softplus=softplus, return_last_state=True, backend=backend)
    gy = torch.randn(y.shape, device="cuda", generator=torch.Generator(device="cuda").manual_seed(1))
    gl = torch.randn(last.shape, device="cuda", generator=torch.Generator(device="cuda").manual_seed(2))
    ((y.float() * gy).sum() + (last * gl).sum()).backward()
    return y.float(), last, {k: v.grad.float() for k, v in ins.items()}


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])) + ("-opts" if s[5] else ""))
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 2e-2)], ids=["fp32", "bf16"])
def test_triton_matches_reference(shape, dtype, tol):
    batch, dim, length, n, groups, options = shape
    inputs = _inputs(*shape, dtype, seed=hash(shape) % 1000)
    y, last, grads = _run("triton", inputs, options, upcast=False)
    assert y.isfinite().all()
    y_ref, last_ref, grads_ref = _run("reference", inputs, options, upcast=True)
    # bf16 inputs are rounded once; the reference sees the same rounded values, upcast
    assert _rel(y, y_ref) < tol
    assert _rel(last, last_ref) < tol
    for name in grads_ref:
        assert _rel(grads[name], grads_ref[name]) < tol, name


def test_triton_is_deterministic_except_atomics():
    """dB and dC sum over a group's channels with float atomics, so only their order may vary."""
    inputs = _inputs(2, 64, 500, 16, 1, True, torch.float32, seed=3)
    first = _run("triton", inputs, True, upcast=False)
    second = _run("triton", inputs, True, upcast=False)
    assert torch.equal(first[0], second[0])
    for name in first[2]:
        if name in ("B", "C"):
            assert _rel(first[2][name], second[2][name]) < 1e-6, name
        else:
            assert torch.equal(first[2][name], second[2][name]), name


def test_auto_picks_triton_on_cuda():
    inputs = _inputs(1, 16, 64, 16, 1, True, torch.float32, seed=4)
    ins = {k: v.detach() for k, v in inputs.items()}
    assert torch.equal(selective_scan(**ins, delta_softplus=True),
                       selective_scan(**ins, delta_softplus=True, backend="triton"))
