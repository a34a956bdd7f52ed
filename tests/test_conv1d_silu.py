"""conv1d_silu: the fused Triton kernels (forward and backward, causal and reverse) against F.conv1d."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import TRITON_DEVICE
from vision_mamba.kernels.conv1d import conv1d_silu, conv1d_silu_reference


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def test_reference_is_nn_conv1d_and_its_time_reversal():
    torch.manual_seed(0)
    conv = nn.Conv1d(6, 6, 4, padding=3, groups=6).double()
    x = torch.randn(2, 6, 11, dtype=torch.float64)
    w = conv.weight.squeeze(1)
    torch.testing.assert_close(conv1d_silu_reference(x, w, conv.bias), F.silu(conv(x)[..., :11]))
    # reverse: the conv on the reversed sequence, reversed back
    torch.testing.assert_close(conv1d_silu_reference(x, w, conv.bias, reverse=True),
                               F.silu(conv(x.flip(-1))[..., :11]).flip(-1))


@pytest.mark.triton_interpret
@pytest.mark.parametrize("length,k,bias,reverse", [(300, 4, True, False), (300, 4, True, True), (7, 4, False, True),
                                                    (2, 3, True, False), (257, 2, False, False)])
def test_triton_matches_reference(length, k, bias, reverse):
    torch.manual_seed(length + k)
    xz = torch.randn(2, 20, length)                    # x is a channel slice of a wider buffer, read in place
    w, b = torch.randn(10, k) * 0.5, (torch.randn(10) if bias else None)
    dy = torch.randn(2, 10, length)
    outs = []
    for backend, dev in (("triton", TRITON_DEVICE), ("torch", "cpu")):
        xz_, w_ = xz.to(dev, copy=True).requires_grad_(), w.to(dev, copy=True).requires_grad_()
        b_ = b.to(dev, copy=True).requires_grad_() if bias else None
        y = conv1d_silu(xz_[:, :10], w_, b_, reverse, backend=backend)
        (y * dy.to(dev)).sum().backward()
        outs.append([y, xz_.grad, w_.grad] + ([b_.grad] if bias else []))
    for got, ref in zip(*outs):
        assert _rel(got.cpu(), ref) < 1e-5


@pytest.mark.triton_interpret
@pytest.mark.parametrize("reverse", [False, True])
def test_triton_token_major_input_keeps_its_layout(reverse):
    """Vim's token-major inference path: x is the first half of a (batch, L, 2 dim) in-projection output
    viewed as (batch, dim, L); y comes back as a (batch, L, dim) tensor viewed the same way (and the
    gradients still match, through the channel-major backward)."""
    torch.manual_seed(reverse)
    xz = torch.randn(2, 70, 2 * 72)                 # (batch, L, 2 dim): 72 channels = 2 tiles, one partial
    w, b = torch.randn(72, 4) * 0.5, torch.randn(72)
    dy = torch.randn(2, 72, 70)
    outs = []
    for backend, dev in (("triton", TRITON_DEVICE), ("torch", "cpu")):
        xz_ = xz.to(dev, copy=True).requires_grad_()
        x = xz_[..., :72].transpose(1, 2)
        y = conv1d_silu(x, w.to(dev), b.to(dev), reverse, backend=backend)
        if backend == "triton":
            assert y.stride(1) == 1 and y.transpose(1, 2).is_contiguous()
        (y * dy.to(dev)).sum().backward()
        outs.append((y, xz_.grad))
    for got, ref in zip(*outs):
        assert _rel(got.cpu(), ref) < 1e-5


def test_bad_inputs_are_named():
    x = torch.randn(2, 4, 9)
    with pytest.raises(ValueError, match=r"weight must have shape \(dim=4, K\)"):
        conv1d_silu(x, torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"bias has shape \(5,\)"):
        conv1d_silu(x, torch.randn(4, 4), torch.randn(5))
    with pytest.raises(ValueError, match="backend='cuda'"):
        conv1d_silu(x, torch.randn(4, 4), backend="cuda")


@pytest.mark.triton_interpret
def test_eager_calls_take_the_function_traced_calls_the_custom_op(monkeypatch):
    """Eager calls run the autograd.Function, traced ones the custom op (kernels/_tracing.py): the same y
    and gradients, and dynamo captures the op in one graph."""
    import torch._dynamo as dynamo
    from vision_mamba.kernels.conv1d import triton_op
    torch.manual_seed(5)
    x, w, b, dy = torch.randn(2, 12, 40), torch.randn(12, 4) * 0.5, torch.randn(12), torch.randn(2, 12, 40)
    ops = []
    real = triton_op.conv1d_silu_fwd
    monkeypatch.setattr(triton_op, "conv1d_silu_fwd", lambda *a: ops.append(1) or real(*a))

    def run():
        leaves = [t.to(TRITON_DEVICE, copy=True).requires_grad_() for t in (x, w, b)]
        y = conv1d_silu(*leaves, True, backend="triton")
        (y * dy.to(TRITON_DEVICE)).sum().backward()
        return [y] + [t.grad for t in leaves]
    eager = run()
    assert ops == []
    with monkeypatch.context() as m:
        m.setattr(triton_op, "traced", lambda *tensors: True)
        traced = run()
    assert ops == [1]
    for got, ref in zip(traced, eager):
        assert _rel(got.cpu(), ref.cpu()) < 1e-6

    graphs = []
    dynamo.reset()
    try:
        torch.compile(lambda t: conv1d_silu(t, w.to(TRITON_DEVICE), None, backend="triton"), fullgraph=True,
                      backend=lambda gm, _: graphs.append(gm) or gm.forward)(x.to(TRITON_DEVICE))
    finally:
        dynamo.reset()
    assert any("conv1d_silu_fwd" in str(n.target) for gm in graphs for n in gm.graph.nodes)
