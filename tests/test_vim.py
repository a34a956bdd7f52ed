"""Vision Mamba (vision_mamba.models.vim) and its Mamba mixer: timm API, parameter counts, and
official-checkpoint compatibility.

The official layout (key names and shapes) and forward pass are written out here from hustvl/Vim's
vim/models_mamba.py and mamba-1p1p1/mamba_ssm/modules/mamba_simple.py (bimamba_type "v2"),
independently of our model: `official_state_dict` builds a checkpoint in that layout and
`official_forward` evaluates it the way the official code does, with its own sequential scan.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import timm

from conftest import TRITON_DEVICE, rel_err
from vision_mamba.layers.mamba_mixer import MambaMixer
from vision_mamba.models.vim import VisionMamba, checkpoint_filter_fn

# official parameter counts at 224 x 224, 1000 classes (Vim paper / README: 7M, 26M, 98M)
OFFICIAL_PARAMS = {"vim_tiny_patch16_224": 7.15e6, "vim_small_patch16_224": 25.80e6,
                   "vim_base_patch16_224": 97.60e6}
# the SSM-free twins (GatedCNN expansion 8/3, kernel 7): measured, reported, not tuned
TWIN_PARAMS = {"vim_tiny_gcnn_patch16_224": 7.7209e6, "vim_small_gcnn_patch16_224": 29.5966e6,
               "vim_base_gcnn_patch16_224": 115.8154e6}
ALL_MODELS = ["vim_tiny_patch16_224", "vim_small_patch16_224", "vim_base_patch16_224",
              "vim_tiny_patch16_stride8_224", "vim_small_patch16_stride8_224", "vim_base_patch16_stride8_224",
              "vim_tiny_gcnn_patch16_224", "vim_small_gcnn_patch16_224", "vim_base_gcnn_patch16_224"]


def tiny_vim(**kwargs) -> VisionMamba:
    cfg = dict(img_size=32, embed_dim=32, depth=2, num_classes=10)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return VisionMamba(**cfg)


# ------------------------------------------------------------------------------------------------
# the official layout and forward, from models_mamba.py / mamba_simple.py (bimamba v2, midclstok)
# ------------------------------------------------------------------------------------------------
def official_shapes(dim: int, depth: int, num_patches: int, num_classes: int, patch: int = 16,
                    d_state: int = 16, expand: int = 2, d_conv: int = 4) -> dict:
    """Every state-dict key of the official VisionMamba and its shape.  mamba_ssm's RMSNorm has no
    bias (registered as None), in_proj/out_proj have bias=False, x_proj bias=False."""
    d_inner, dt_rank = expand * dim, math.ceil(dim / 16)
    shapes = {
        "cls_token": (1, 1, dim),
        "pos_embed": (1, num_patches + 1, dim),
        "patch_embed.proj.weight": (dim, 3, patch, patch),
        "patch_embed.proj.bias": (dim,),
        "norm_f.weight": (dim,),
        "head.weight": (num_classes, dim),
        "head.bias": (num_classes,),
    }
    for i in range(depth):
        m = f"layers.{i}.mixer."
        shapes.update({
            f"layers.{i}.norm.weight": (dim,),
            m + "in_proj.weight": (2 * d_inner, dim),
            m + "out_proj.weight": (dim, d_inner),
            m + "A_log": (d_inner, d_state), m + "A_b_log": (d_inner, d_state),
            m + "D": (d_inner,), m + "D_b": (d_inner,),
            m + "conv1d.weight": (d_inner, 1, d_conv), m + "conv1d.bias": (d_inner,),
            m + "conv1d_b.weight": (d_inner, 1, d_conv), m + "conv1d_b.bias": (d_inner,),
            m + "x_proj.weight": (dt_rank + 2 * d_state, d_inner),
            m + "x_proj_b.weight": (dt_rank + 2 * d_state, d_inner),
            m + "dt_proj.weight": (d_inner, dt_rank), m + "dt_proj.bias": (d_inner,),
            m + "dt_proj_b.weight": (d_inner, dt_rank), m + "dt_proj_b.bias": (d_inner,),
        })
    return shapes


def official_state_dict(dim=32, depth=2, num_patches=4, num_classes=10, seed=0) -> dict:
    """Random weights in the official layout with trained-like magnitudes (A_log around log(1..N),
    dt biases giving steps in [1e-3, 0.1], norm weights around 1)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in official_shapes(dim, depth, num_patches, num_classes).items():
        r = torch.randn(shape, generator=g)
        if k.endswith(("A_log", "A_b_log")):
            v = torch.log(torch.arange(1, shape[1] + 1).float()).expand(shape) + 0.3 * r
        elif k.endswith(("dt_proj.bias", "dt_proj_b.bias")):
            v = torch.log(torch.expm1(torch.empty(shape).uniform_(1e-3, 0.1, generator=g)))
        elif k.endswith("norm.weight") or k.endswith("norm_f.weight") or k.split(".")[-1] in ("D", "D_b"):
            v = 1 + 0.1 * r
        elif k in ("cls_token", "pos_embed"):
            v = 0.02 * r
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
            v = r / math.sqrt(fan_in)
        sd[k] = v.contiguous()
    return sd


def _scan_loop(u, delta, A, B, C, D, z, delta_bias):
    """mamba_ssm's selective_scan_ref, sequential, fp64: softplus dt, z gate, D skip."""
    u, delta, A, B, C, D, z, delta_bias = (t.double() for t in (u, delta, A, B, C, D, z, delta_bias))
    dt = F.softplus(delta + delta_bias[:, None])                     # (b, d, L)
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=torch.float64)
    ys = []
    for t in range(u.shape[-1]):
        h = torch.exp(dt[..., t, None] * A) * h + (dt[..., t] * u[..., t])[..., None] * B[:, None, :, t]
        ys.append((h * C[:, None, :, t]).sum(-1))
    return ((torch.stack(ys, -1) + D[:, None] * u) * F.silu(z)).float()


def _official_inner(xz, sd, m, suffix):
    """mamba_inner_fn_no_out_proj: causal conv + silu, x_proj, dt_proj (bias as delta_bias), scan."""
    d_inner, length = xz.shape[1] // 2, xz.shape[-1]
    dt_rank = sd[m + "dt_proj" + suffix + ".weight"].shape[1]
    x, z = xz.chunk(2, dim=1)
    w = sd[m + "conv1d" + suffix + ".weight"]
    x = F.conv1d(x, w, sd[m + "conv1d" + suffix + ".bias"], padding=w.shape[-1] - 1, groups=d_inner)
    x = F.silu(x[..., :length])
    x_dbl = x.transpose(1, 2) @ sd[m + "x_proj" + suffix + ".weight"].t()       # (b, L, R + 2N)
    n = (x_dbl.shape[-1] - dt_rank) // 2
    delta = (x_dbl[..., :dt_rank] @ sd[m + "dt_proj" + suffix + ".weight"].t()).transpose(1, 2)
    B, C = x_dbl[..., dt_rank:dt_rank + n].transpose(1, 2), x_dbl[..., -n:].transpose(1, 2)
    a_log = sd[m + ("A_log" if not suffix else "A_b_log")]
    return _scan_loop(x, delta, -torch.exp(a_log), B, C, sd[m + "D" + suffix], z,
                      sd[m + "dt_proj" + suffix + ".bias"])


def official_forward(sd: dict, images: torch.Tensor, depth: int, stride: int = 16, eps: float = 1e-5):
    """VisionMamba.forward of the official code (fused add + RMSNorm, residual in fp32, middle class
    token, bimamba v2 with if_divide_out, head on the class token), in eval mode."""
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    x = F.conv2d(images, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=stride)
    x = x.flatten(2).transpose(1, 2)
    batch, num_patches, _ = x.shape
    pos = num_patches // 2
    x = torch.cat((x[:, :pos], sd["cls_token"].expand(batch, -1, -1), x[:, pos:]), dim=1) + sd["pos_embed"]
    hidden, residual = x, None
    for i in range(depth):
        m = f"layers.{i}.mixer."
        residual = hidden if residual is None else residual + hidden
        xz = (rms(residual, sd[f"layers.{i}.norm.weight"]) @ sd[m + "in_proj.weight"].t()).transpose(1, 2)
        y = _official_inner(xz, sd, m, "") + _official_inner(xz.flip(-1), sd, m, "_b").flip(-1)
        hidden = (y.transpose(1, 2) / 2) @ sd[m + "out_proj.weight"].t()
    feats = rms(residual + hidden, sd["norm_f.weight"])
    return feats[:, pos] @ sd["head.weight"].t() + sd["head.bias"]


# ------------------------------------------------------------------------------------------------
# registration and parameter counts
# ------------------------------------------------------------------------------------------------
def test_registered():
    assert set(ALL_MODELS) <= set(timm.list_models("vim_*"))
    cfg = timm.create_model("vim_tiny_patch16_224", depth=1, img_size=32).pretrained_cfg
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["std"] == (0.229, 0.224, 0.225)
    assert cfg["first_conv"] == "patch_embed.proj" and cfg["classifier"] == "head" and cfg["num_classes"] == 1000
    assert cfg["url"] == ""


def _count(name: str, **kwargs) -> int:
    with torch.device("meta"):
        model = timm.create_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_param_count_matches_official(name):
    n = _count(name)
    assert abs(n / OFFICIAL_PARAMS[name] - 1) < 0.01, (name, n)


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS))
def test_state_dict_layout_matches_official(name):
    """Every key and shape of the registered 224 models equals the official model's."""
    dim = {"tiny": 192, "small": 384, "base": 768}[name.split("_")[1]]
    with torch.device("meta"):
        model = timm.create_model(name)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_shapes(dim, 24, 14 * 14, 1000)


def test_stride8_layout():
    with torch.device("meta"):
        model = timm.create_model("vim_tiny_patch16_stride8_224")
    assert model.pos_embed.shape == (1, 27 * 27 + 1, 192)  # (224 - 16) // 8 + 1 = 27
    assert model.patch_embed.proj.stride == (8, 8) and model.patch_embed.proj.kernel_size == (16, 16)
    assert model.feature_info[0]["reduction"] == 8


@pytest.mark.parametrize("name", sorted(TWIN_PARAMS))
def test_twin_param_count(name):
    n = _count(name)
    print(f"{name}: {n / 1e6:.3f}M parameters")
    assert abs(n / TWIN_PARAMS[name] - 1) < 1e-3, (name, n)


# ------------------------------------------------------------------------------------------------
# the mixer
# ------------------------------------------------------------------------------------------------
def test_mixer_init():
    m = MambaMixer(64, d_state=8, bidirectional=True)
    for suffix, a in (("", m.A_log), ("_b", m.A_b_log)):
        assert torch.equal(a, torch.log(torch.arange(1, 9.)).repeat(128, 1))
        dt = F.softplus(getattr(m, "dt_proj" + suffix).bias)
        assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001
        assert getattr(m, "dt_proj" + suffix).weight.abs().max() <= m.dt_rank ** -0.5
    assert torch.equal(m.D, torch.ones(128)) and torch.equal(m.D_b, torch.ones(128))
    assert m.dt_rank == 4 and m.x_proj.out_features == 4 + 16
    assert not MambaMixer(64).bidirectional and not hasattr(MambaMixer(64), "conv1d_b")


def test_bidirectional_is_forward_plus_flipped_backward():
    """bimamba v2 = (forward mixer + flip(backward mixer(flip))) / 2 with shared in/out proj."""
    torch.manual_seed(0)
    bi = MambaMixer(16, d_state=4, bidirectional=True, if_divide_out=True).eval()
    fwd, bwd = MambaMixer(16, d_state=4).eval(), MambaMixer(16, d_state=4).eval()
    sd = bi.state_dict()
    fwd.load_state_dict({k: v for k, v in sd.items() if "_b" not in k})
    bwd.load_state_dict({k.replace("_b", ""): v for k, v in sd.items()
                         if "_b" in k or k.startswith(("in_proj", "out_proj"))})
    x = torch.randn(2, 7, 16)
    expected = (fwd(x) + bwd(x.flip(1)).flip(1)) / 2
    assert rel_err(bi(x), expected) < 1e-5
    bi.if_divide_out = False
    assert rel_err(bi(x), 2 * expected) < 1e-5


def test_mixer_rejects_wrong_shape():
    with pytest.raises(ValueError, match="expected \\(B, L, dim=16\\)"):
        MambaMixer(16)(torch.randn(2, 5, 8))


# ------------------------------------------------------------------------------------------------
# official checkpoints
# ------------------------------------------------------------------------------------------------
def test_official_state_dict_loads_and_matches_official_forward():
    sd = official_state_dict()
    model = tiny_vim().eval()
    ckpt = {"model": {"module." + k: v for k, v in sd.items()}, "epoch": 299, "optimizer": {}}
    model.load_state_dict(checkpoint_filter_fn(ckpt, model), strict=True)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert rel_err(model(images), official_forward(sd, images, depth=2)) < 1e-4


def test_official_stride8_matches_official_forward():
    sd = official_state_dict(num_patches=9)  # img 32, kernel 16, stride 8: a 3 x 3 grid
    model = tiny_vim(stride=8).eval()
    model.load_state_dict(checkpoint_filter_fn(sd, model), strict=True)
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert rel_err(model(images), official_forward(sd, images, depth=2, stride=8)) < 1e-4


def test_checkpoint_filter_resizes_pos_embed_keeping_middle_cls():
    sd = official_state_dict(num_patches=9)          # a 3 x 3 grid: class token's entry at index 4
    model = tiny_vim()                                # 2 x 2 grid: class token at index 2
    out = checkpoint_filter_fn({"state_dict": sd}, model)
    model.load_state_dict(out, strict=True)
    assert out["pos_embed"].shape == (1, 5, 32)
    assert torch.equal(model.pos_embed[0, 2], sd["pos_embed"][0, 4])
    assert set(out) == set(sd)


def test_checkpoint_filter_rejects_non_square_pos_embed():
    sd = official_state_dict(num_patches=6)
    with pytest.raises(ValueError, match="square"):
        checkpoint_filter_fn(sd, tiny_vim())


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_create_model_loads_local_file(tmp_path, suffix):
    # 1000 classes: timm drops the head of a checkpoint whose class count differs from the cfg's
    sd = official_state_dict(dim=192, depth=1, num_patches=4, num_classes=1000)
    path = tmp_path / f"vim{suffix}"
    if suffix == ".pth":
        torch.save({"model": sd, "epoch": 1}, path)
    else:
        from safetensors.torch import save_file
        save_file(sd, str(path))
    model = timm.create_model("vim_tiny_patch16_224", pretrained=True, depth=1, img_size=32,
                              pretrained_cfg_overlay=dict(file=str(path))).eval()
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert rel_err(model(images), official_forward(sd, images, depth=1)) < 1e-4


# ------------------------------------------------------------------------------------------------
# timm API on small models
# ------------------------------------------------------------------------------------------------
def test_forward_backward():
    torch.manual_seed(0)
    model = timm.create_model("vim_tiny_patch16_224", depth=2, img_size=64, num_classes=7, drop_path_rate=0.1)
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.layers[1].mixer.A_b_log.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [(64, 64), (80, 80), (96, 96), (64, 96)])
def test_any_input_size(size):
    model = tiny_vim(img_size=64).eval()
    feats = model.forward_features(torch.randn(1, 3, *size))
    assert feats.shape == (1, (size[0] // 16) * (size[1] // 16) + 1, 32)
    assert model(torch.randn(1, 3, *size)).shape == (1, 10)


def test_resampled_pos_embed_keeps_class_entry():
    model = tiny_vim(img_size=64)
    from vision_mamba.models.vim import resample_pos_embed
    pe = resample_pos_embed(model.pos_embed, (4, 4), (5, 6))
    assert pe.shape == (1, 31, 32) and torch.equal(pe[0, 15], model.pos_embed[0, 8])
    assert torch.equal(resample_pos_embed(model.pos_embed, (4, 4), (4, 4)), model.pos_embed)


def test_reset_classifier():
    model = tiny_vim()
    model.reset_classifier(3)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    model.reset_classifier(0)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 32)
    model.reset_classifier(0, "")
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5, 32)


def test_no_weight_decay():
    nwd = tiny_vim(depth=1).no_weight_decay()
    assert nwd == {"pos_embed", "cls_token", "layers.0.mixer.A_log", "layers.0.mixer.A_b_log",
                   "layers.0.mixer.D", "layers.0.mixer.D_b"}


def test_grad_checkpointing_same_output():
    model = tiny_vim().eval()
    x = torch.randn(2, 3, 32, 32)
    ref = model(x)
    model.set_grad_checkpointing(True)
    out = model(x)
    assert torch.allclose(out, ref)
    out.sum().backward()
    assert model.cls_token.grad is not None


def test_forward_intermediates():
    model = tiny_vim(img_size=64, depth=4).eval()
    x = torch.randn(2, 3, 64, 80)
    final, inter = model.forward_intermediates(x, indices=2)
    assert len(inter) == 2 and all(t.shape == (2, 32, 4, 5) for t in inter)
    assert torch.allclose(final, model.forward_features(x), atol=1e-6)
    nlc = model.forward_intermediates(x, indices=[0, -1], output_fmt="NLC", intermediates_only=True, norm=True)
    assert [t.shape for t in nlc] == [(2, 20, 32)] * 2
    with_prefix = model.forward_intermediates(x, indices=1, return_prefix_tokens=True, intermediates_only=True)
    spatial, cls = with_prefix[0]
    assert spatial.shape == (2, 32, 4, 5) and cls.shape == (2, 1, 32)
    # the last intermediate, normalised, is the final features (class token in the middle: index 10)
    last = model.forward_intermediates(x, indices=1, output_fmt="NLC", intermediates_only=True, norm=True)[0]
    assert torch.allclose(last, torch.cat((final[:, :10], final[:, 11:]), 1), atol=1e-6)


def test_features_only():
    model = timm.create_model("vim_tiny_patch16_224", features_only=True, depth=4, img_size=64)
    assert model.feature_info.channels() == [192] * 3 and model.feature_info.reduction() == [16] * 3
    feats = model(torch.randn(1, 3, 64, 64))
    assert [f.shape for f in feats] == [(1, 192, 4, 4)] * 3
    model = timm.create_model("vim_tiny_patch16_224", features_only=True, depth=4, img_size=64, out_indices=(0, 2))
    assert [f.shape for f in model(torch.randn(1, 3, 96, 64))] == [(1, 192, 6, 4)] * 2


# ------------------------------------------------------------------------------------------------
# the SSM-free twin
# ------------------------------------------------------------------------------------------------
def test_gated_cnn_twin_forward_backward():
    model = timm.create_model("vim_tiny_gcnn_patch16_224", depth=2, img_size=64, num_classes=5)
    assert model.global_pool == "avg"
    out = model(torch.randn(2, 3, 64, 80))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert model.layers[0].mixer.conv.weight.grad.abs().sum() > 0
    assert {k.split(".", 3)[-1] for k in model.state_dict() if ".mixer." in k} == {
        "fc1.weight", "fc1.bias", "conv.weight", "conv.bias", "fc2.weight", "fc2.bias"}


def test_gated_cnn_passes_class_token_through():
    mixer = timm.create_model("vim_tiny_gcnn_patch16_224", depth=1, img_size=64).layers[0].mixer
    x = torch.randn(2, 3 * 4 + 1, 192)
    y = mixer(x, (3, 4))
    assert torch.equal(y[:, 6], x[:, 6])


# ------------------------------------------------------------------------------------------------
# scan backends give the same model
# ------------------------------------------------------------------------------------------------
@pytest.mark.triton_interpret
def test_triton_and_torch_backends_agree():
    ref = tiny_vim(scan_backend="torch").eval()
    tri = tiny_vim(scan_backend="triton").eval()
    tri.load_state_dict(ref.state_dict())
    tri.to(TRITON_DEVICE)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert rel_err(tri(x.to(TRITON_DEVICE)).cpu(), ref(x)) < 1e-4


@pytest.mark.triton_interpret
def test_triton_and_torch_backends_agree_on_gradients():
    """The Triton path (fused conv1d + SiLU, chunked scan, both directions) differentiates like torch's.
    N = 4 and width 16 keep the interpreter's run short (N = 16 is covered by the scan's own tests)."""
    torch.manual_seed(0)
    ref = tiny_vim(scan_backend="torch", d_state=4, embed_dim=16)
    tri = tiny_vim(scan_backend="triton", d_state=4, embed_dim=16)
    tri.load_state_dict(ref.state_dict())
    tri.to(TRITON_DEVICE)
    x = torch.randn(2, 3, 32, 32)
    for m in (ref, tri):
        m(x.to(TRITON_DEVICE) if m is tri else x).square().sum().backward()
    grads = dict(ref.named_parameters())
    checked = 0
    for name, p in tri.named_parameters():
        if grads[name].grad is not None and grads[name].grad.norm() > 0:
            assert rel_err(p.grad.cpu(), grads[name].grad) < 1e-4, name
            checked += "conv1d" in name
    assert checked >= 4       # conv1d and conv1d_b weights and biases of at least one layer


@pytest.mark.triton_interpret
def test_token_major_inference_path_matches_channel_major(monkeypatch):
    """Inference where the Triton scan prefers token-major inputs (forced here at a tiny size): the mixer
    keeps every tensor (batch, L, d) -- conv, projections and the blocked scan read and write views of
    it -- and gives the channel-major training path's output, both directions."""
    from vision_mamba.kernels.selective import triton_fused
    monkeypatch.setattr(triton_fused, "BLOCKED_MIN_WARPS", 0)
    torch.manual_seed(0)
    mixer = MambaMixer(32, d_state=8, bidirectional=True, if_divide_out=True, scan_backend="triton").to(TRITON_DEVICE)
    x = torch.randn(2, 37, 32, device=TRITON_DEVICE)
    with torch.no_grad():
        assert mixer._token_major(x)
        got = mixer(x)
    assert not mixer._token_major(x)          # parameters need gradients here: channel-major
    ref = mixer(x)
    assert rel_err(got, ref.detach()) < 1e-5
