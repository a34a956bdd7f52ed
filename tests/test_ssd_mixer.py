"""The Mamba-2 mixers against route-by-route compositions written out here, the gated RMSNorm against
its formula, the Triton and torch scans inside a mixer, and the SSD variants of Vim and VMamba."""
import pytest
import timm
import torch
import torch.nn.functional as F

import vision_mamba  # noqa: F401 - registers the models
from conftest import TRITON_DEVICE, rel_err
from vision_mamba.kernels.ssd import ssd_scan_reference
from vision_mamba.layers.ssd_mixer import SSD2D, GatedRMSNorm, SSDMixer


def _perturb_(module: torch.nn.Module, seed: int = 0) -> None:
    """Random values in every parameter (the inits of D = 1, A_logs = 0 would hide mix-ups)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))


def test_gated_rmsnorm_matches_its_formula():
    norm = GatedRMSNorm(12, group_size=4, eps=1e-5)
    _perturb_(norm)
    x, z = torch.randn(2, 5, 12), torch.randn(2, 5, 12)
    gated = (x * F.silu(z)).view(2, 5, 3, 4)
    expected = (gated / torch.sqrt(gated.square().mean(-1, keepdim=True) + 1e-5)).view(2, 5, 12) * norm.weight
    assert rel_err(norm(x, z), expected) < 1e-6


def ssd_mixer_by_hand(m: SSDMixer, x: torch.Tensor) -> torch.Tensor:
    """Mamba-2 one direction at a time: the forward sequence with conv1d/A_log/D/dt_bias, the reversed
    one with the *_b copies, outputs summed (halved), gated RMSNorm, out_proj."""
    batch, length, _ = x.shape
    z, xbc, dt = m.in_proj(x).split([m.d_inner, m.conv_dim, m.nheads], dim=-1)
    ys = []
    for suffix, flip in (("", False), ("_b", True)):
        seq = (lambda t: t.flip(1)) if flip else (lambda t: t)
        conv = getattr(m, "conv1d" + suffix)
        h = F.silu(conv(seq(xbc).transpose(1, 2))[..., :length]).transpose(1, 2)
        xs, B, C = h.split([m.d_inner, m.ngroups * m.d_state, m.ngroups * m.d_state], dim=-1)
        y = ssd_scan_reference(xs.reshape(batch, length, m.nheads, m.headdim), seq(dt),
                               -torch.exp(getattr(m, f"A{suffix}_log")),
                               B.reshape(batch, length, m.ngroups, m.d_state),
                               C.reshape(batch, length, m.ngroups, m.d_state),
                               D=getattr(m, "D" + suffix), dt_bias=getattr(m, "dt_bias" + suffix), dt_softplus=True)
        ys.append(seq(y.reshape(batch, length, m.d_inner)))
    y = (ys[0] + ys[1]) / 2
    gated = (y * F.silu(z)).unflatten(-1, (m.ngroups, -1))
    normed = gated * torch.rsqrt(gated.square().mean(-1, keepdim=True) + m.norm.eps)
    return m.out_proj(normed.flatten(-2) * m.norm.weight)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_bidirectional_ssd_mixer_is_two_mamba2_scans(backend):
    torch.manual_seed(0)
    m = SSDMixer(16, d_state=4, headdim=8, ngroups=2, chunk_size=4, bidirectional=True, if_divide_out=True,
                 scan_backend=backend)
    _perturb_(m)
    x = torch.randn(2, 11, 16)
    assert rel_err(m(x), ssd_mixer_by_hand(m, x)) < 1e-5


def ssd2d_by_hand(m: SSD2D, x: torch.Tensor) -> torch.Tensor:
    """VMamba's m0 mixer one route at a time: row-major, column-major and both reversed."""
    b, _, h, w = x.shape
    u = m.act(m.conv2d(m.in_proj(x)))
    e, r, n, p = m.d_inner, m.dt_rank, m.d_state, m.headdim
    rows, cols = u.flatten(2), u.transpose(2, 3).flatten(2)
    to_seq = [lambda t: t, lambda t: t, lambda t: t.flip(-1), lambda t: t.flip(-1)]
    from_cols = [False, True, False, True]
    out = 0
    for k, src in enumerate((rows, cols, rows, cols)):
        xs = to_seq[k](src)                                                   # (b, e, L)
        dt, B, C = torch.split(torch.einsum("ce,bel->blc", m.x_proj_weight[k], xs), [r, n, n], dim=-1)
        y = ssd_scan_reference(xs.transpose(1, 2).reshape(b, h * w, r, p), dt, -torch.exp(m.A_logs[k]),
                               B[:, :, None], C[:, :, None], D=m.Ds[k], dt_bias=m.dt_projs_bias[k], dt_softplus=True)
        y = to_seq[k](y.reshape(b, h * w, e).transpose(1, 2))                  # back to this route's source order
        if from_cols[k]:
            y = y.view(b, e, w, h).transpose(2, 3).reshape(b, e, h * w)
        out = out + y
    return m.out_proj(m.out_norm(out.view(b, e, h, w)))


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_ssd2d_is_four_routes_of_mamba2(backend):
    torch.manual_seed(0)
    m = SSD2D(32, d_state=4, ssm_ratio=1.0, chunk_size=8, scan_backend=backend, cross_scan_backend="reference")
    _perturb_(m)
    x = torch.randn(2, 32, 5, 3)                                              # h != w: catches a transposed route
    assert m.dt_rank == 2 and m.headdim == 16
    assert rel_err(m(x), ssd2d_by_hand(m, x)) < 1e-5


@pytest.mark.triton_interpret
def test_triton_scan_inside_the_mixers_matches_torch():
    torch.manual_seed(0)
    for make, shape in ((lambda be: SSDMixer(16, d_state=16, headdim=16, chunk_size=16, bidirectional=True,
                                             scan_backend=be), (1, 20, 16)),
                        (lambda be: SSD2D(16, d_state=16, chunk_size=16, scan_backend=be), (1, 16, 4, 5))):
        fast, plain = make("triton").to(TRITON_DEVICE), make("torch").to(TRITON_DEVICE)
        _perturb_(plain)
        fast.load_state_dict(plain.state_dict())
        x = torch.randn(shape, device=TRITON_DEVICE, requires_grad=True)
        y_fast, y_plain = fast(x), plain(x)
        assert rel_err(y_fast, y_plain) < 1e-5
        g_fast = torch.autograd.grad(y_fast.square().sum(), [x, *fast.parameters()])
        g_plain = torch.autograd.grad(y_plain.square().sum(), [x, *plain.parameters()])
        for name, a, b in zip(["x"] + [n for n, _ in plain.named_parameters()], g_fast, g_plain):
            assert rel_err(a, b) < 1e-4, name


def test_mixer_arguments_are_checked():
    with pytest.raises(ValueError, match=r"headdim=48 does not divide d_inner=64"):
        SSDMixer(32, headdim=48)
    with pytest.raises(ValueError, match=r"ngroups=3 does not divide the 2 heads"):
        SSDMixer(32, headdim=32, ngroups=3)
    with pytest.raises(ValueError, match=r"dt_rank=5 \(the heads per route\) does not divide d_inner=64"):
        SSD2D(64, dt_rank=5)
    with pytest.raises(ValueError, match=r"SSDMixer: x has shape \(2, 8\), expected \(B, L, dim=32\)"):
        SSDMixer(32, headdim=16)(torch.zeros(2, 8))


def test_ssd_variants_are_registered_with_their_mixers():
    vim = timm.create_model("vim_tiny_ssd_patch16_224")
    mixer = vim.layers[0].mixer
    assert isinstance(mixer, SSDMixer) and mixer.ordering == "bidi" and mixer.d_state == 64
    keys = {k.split("mixer.", 1)[1] for k in vim.state_dict() if k.startswith("layers.0.mixer.")}
    assert keys == {"in_proj.weight", "conv1d.weight", "conv1d.bias", "conv1d_b.weight", "conv1d_b.bias", "dt_bias",
                    "dt_bias_b", "A_log", "A_b_log", "D", "D_b", "norm.weight", "out_proj.weight"}
    assert {"layers.0.mixer.A_log", "layers.0.mixer.D_b"} <= vim.no_weight_decay()
    # the official vmamba_tiny_m2: depths 2-2-4-2, d_state 64, dt_rank 6 heads of 16 channels per route
    vm = timm.create_model("vmamba_tiny_m2")
    assert [len(layer.blocks) for layer in vm.layers] == [2, 2, 4, 2]
    op = vm.layers[0].blocks[0].op
    assert isinstance(op, SSD2D) and (op.d_state, op.dt_rank, op.headdim) == (64, 6, 16)
    shapes = {k.split("op.", 1)[1]: tuple(v.shape) for k, v in vm.state_dict().items()
              if k.startswith("layers.0.blocks.0.op.")}
    assert shapes == {"in_proj.weight": (96, 96), "conv2d.weight": (96, 1, 3, 3), "x_proj_weight": (4, 134, 96),
                      "A_logs": (4, 6), "Ds": (4, 6, 16), "dt_projs_bias": (4, 6), "out_norm.weight": (96,),
                      "out_norm.bias": (96,), "out_proj.weight": (96, 96)}
