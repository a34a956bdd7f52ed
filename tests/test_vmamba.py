"""VMamba v2 (vision_mamba.models.vmamba, vision_mamba.layers.ss2d): the official architecture and keys,
the timm API, and the selective-scan backends inside the model.

`official_state_shapes` is written from the official source (MzeroMiko/VMamba,
classification/models/vmamba.py: VSSM, VSSBlock, SS2D.__initv2__ with forward_type "v05_noz",
_make_patch_embed_v2, _make_downsample_v3, the classifier Sequential, Mlp with Linear2d) and the configs
classification/configs/vssm/vmambav2{,v}_{tiny,small,base}_224.yaml, never from our model; it is the
reference for the key names, the shapes and the parameter counts.
"""
from __future__ import annotations

import math
import sys
import types

import pytest
import timm
import torch
import torch.nn.functional as F

from conftest import TRITON_DEVICE, rel_err
from vision_mamba.kernels import selective_scan
from vision_mamba.layers.ss2d import SS2D
from vision_mamba.models.vmamba import VSSM, checkpoint_filter_fn

# name: (depths, dims[0], ssm_ratio, published #params in M, README / assets/performance.md)
OFFICIAL = {
    "vmamba_tiny_s1l8": ((2, 2, 8, 2), 96, 1.0, 30),
    "vmamba_tiny_s2l5": ((2, 2, 5, 2), 96, 2.0, 31),
    "vmamba_small_s2l15": ((2, 2, 15, 2), 96, 2.0, 50),
    "vmamba_small_s1l20": ((2, 2, 20, 2), 96, 1.0, 49),
    "vmamba_base_s2l15": ((2, 2, 15, 2), 128, 2.0, 89),
    "vmamba_base_s1l20": ((2, 2, 20, 2), 128, 1.0, 87),
}
TWINS = {"vmamba_tiny_gcnn": "vmamba_tiny_s1l8", "vmamba_small_gcnn": "vmamba_small_s2l15",
         "vmamba_base_gcnn": "vmamba_base_s2l15"}


def official_state_shapes(depths, dim, ssm_ratio, num_classes=1000, d_state=1, k_group=4, mlp_ratio=4.0):
    """{key: shape} of the official VSSM for the v2 recipe (ssm_conv 3 without bias, in/out_proj
    without bias, channel-first Linear2d weights in nn.Linear's (out, in) shape)."""
    dims = [dim * 2 ** i for i in range(len(depths))]
    half = dims[0] // 2
    s = {"patch_embed.0.weight": (half, 3, 3, 3), "patch_embed.0.bias": (half,),
         "patch_embed.2.weight": (half,), "patch_embed.2.bias": (half,),
         "patch_embed.5.weight": (dims[0], half, 3, 3), "patch_embed.5.bias": (dims[0],),
         "patch_embed.7.weight": (dims[0],), "patch_embed.7.bias": (dims[0],)}
    for i, (depth, c) in enumerate(zip(depths, dims)):
        e, r, h = int(ssm_ratio * c), math.ceil(c / 16), int(c * mlp_ratio)
        for j in range(depth):
            p = f"layers.{i}.blocks.{j}."
            s.update({
                p + "norm.weight": (c,), p + "norm.bias": (c,),
                p + "op.x_proj_weight": (k_group, r + 2 * d_state, e),
                p + "op.dt_projs_weight": (k_group, e, r), p + "op.dt_projs_bias": (k_group, e),
                p + "op.A_logs": (k_group * e, d_state), p + "op.Ds": (k_group * e,),
                p + "op.in_proj.weight": (e, c), p + "op.conv2d.weight": (e, 1, 3, 3),
                p + "op.out_norm.weight": (e,), p + "op.out_norm.bias": (e,),
                p + "op.out_proj.weight": (c, e),
                p + "norm2.weight": (c,), p + "norm2.bias": (c,),
                p + "mlp.fc1.weight": (h, c), p + "mlp.fc1.bias": (h,),
                p + "mlp.fc2.weight": (c, h), p + "mlp.fc2.bias": (c,),
            })
        if i < len(depths) - 1:
            n = dims[i + 1]
            s.update({f"layers.{i}.downsample.1.weight": (n, c, 3, 3), f"layers.{i}.downsample.1.bias": (n,),
                      f"layers.{i}.downsample.3.weight": (n,), f"layers.{i}.downsample.3.bias": (n,)})
    s.update({"classifier.norm.weight": (dims[-1],), "classifier.norm.bias": (dims[-1],),
              "classifier.head.weight": (num_classes, dims[-1]), "classifier.head.bias": (num_classes,)})
    return s


def count(shapes: dict) -> int:
    return sum(math.prod(v) for v in shapes.values())


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_model(name, **kwargs):
    with torch.device("meta"):  # shapes only: no init cost for the 90M-parameter models
        return timm.create_model(name, **kwargs)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return timm.create_model("vmamba_tiny_s1l8", num_classes=10).eval()


# ---------------------------------------------------------------------------------------------
# architecture: parameter counts and keys against the official ones
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(OFFICIAL))
def test_keys_shapes_and_param_count_match_official(name):
    depths, dim, ratio, published_m = OFFICIAL[name]
    expected = official_state_shapes(depths, dim, ratio)
    model = meta_model(name)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    assert n_params(model) == count(expected)
    assert abs(count(expected) / 1e6 - published_m) / published_m < 0.01


def test_param_counts_quoted_in_brief():
    assert round(n_params(meta_model("vmamba_tiny_s1l8")) / 1e6, 2) == 30.25
    assert round(n_params(meta_model("vmamba_small_s2l15")) / 1e6, 2) == 50.15


@pytest.mark.parametrize("twin", list(TWINS))
def test_twin_replaces_only_the_mixer(twin):
    depths, dim, ratio, _ = OFFICIAL[TWINS[twin]]
    ssm_shapes = official_state_shapes(depths, dim, ratio)
    shared = {k: v for k, v in ssm_shapes.items() if ".op." not in k}
    gcnn = 0
    for i, depth in enumerate(depths):  # GatedCNNMixer: fc1 (2H), depthwise 7x7 on all C, fc2
        c = dim * 2 ** i
        h = int(8 / 3 * c)
        gcnn += depth * (c * 2 * h + 2 * h + c * 49 + c + h * c + c)
    model = meta_model(twin)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: v for k, v in got.items() if ".op." not in k} == shared
    assert all(k.split(".op.")[1].split(".")[0] in ("fc1", "conv", "fc2") for k in got if ".op." in k)
    assert n_params(model) == count(shared) + gcnn


# ---------------------------------------------------------------------------------------------
# forward / backward, sizes, timm API
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [64, 96])
def test_forward_sizes(tiny, size):
    with torch.no_grad():
        assert tiny(torch.randn(2, 3, size, size)).shape == (2, 10)
        assert tiny.forward_features(torch.randn(1, 3, size, size)).shape == (1, 768, size // 32, size // 32)


@pytest.mark.parametrize("name", ["vmamba_tiny_s1l8", "vmamba_tiny_gcnn"])
def test_forward_backward(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10, drop_path_rate=0.1)
    x = torch.randn(2, 3, 64, 64, requires_grad=True)
    model(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    no_grad = [k for k, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []


def test_grad_checkpointing_same_result(tiny):
    x = torch.randn(1, 3, 64, 64)
    ref = tiny(x)
    tiny.set_grad_checkpointing(True)
    try:
        out = tiny(x)
    finally:
        tiny.set_grad_checkpointing(False)
    torch.testing.assert_close(out, ref)


def test_features_only():
    model = timm.create_model("vmamba_tiny_s1l8", features_only=True)
    assert model.feature_info.channels() == [96, 192, 384, 768]
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in feats] == [(1, 96, 16, 16), (1, 192, 8, 8), (1, 384, 4, 4), (1, 768, 2, 2)]
    two = timm.create_model("vmamba_tiny_s1l8", features_only=True, out_indices=(0, 1))
    assert len(two.model.layers) == 2 and "layers.2.blocks.0.op.A_logs" not in two.state_dict()
    assert [tuple(f.shape) for f in two(torch.randn(1, 3, 64, 64))] == [(1, 96, 16, 16), (1, 192, 8, 8)]


def test_forward_intermediates(tiny):
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final, inter = tiny.forward_intermediates(x)
        torch.testing.assert_close(final, tiny.forward_features(x))
        assert [t.shape[1:] for t in inter] == [(96, 16, 16), (192, 8, 8), (384, 4, 4), (768, 2, 2)]
        torch.testing.assert_close(inter[-1], final)  # the last stage has no downsample
        normed = tiny.forward_intermediates(x, indices=[3], norm=True, intermediates_only=True)
        torch.testing.assert_close(normed[0], tiny.classifier.norm(final))
        nhwc = tiny.forward_intermediates(x, indices=2, output_fmt="NHWC", intermediates_only=True)
        assert [t.shape[1:] for t in nhwc] == [(4, 4, 384), (2, 2, 768)]
        early = tiny.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)
        torch.testing.assert_close(early[0], inter[1])


def test_reset_classifier_and_pre_logits():
    model = timm.create_model("vmamba_tiny_s1l8", num_classes=10).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(0)
        assert model.get_classifier().__class__.__name__ == "Identity"
        torch.testing.assert_close(model(x), pooled)
        model.reset_classifier(7)
        assert model(x).shape == (1, 7)
        model.reset_classifier(0, global_pool="")
        assert model(x).shape == (1, 768, 2, 2)
    assert model.pretrained_cfg["crop_pct"] == 0.875 and model.pretrained_cfg["interpolation"] == "bicubic"


def test_no_weight_decay_names_the_ssm_parameters(tiny):
    names = tiny.no_weight_decay()
    ssm = {k for k in tiny.state_dict() if k.endswith((".A_logs", ".Ds"))}
    assert names == ssm and len(ssm) == 2 * 14


# ---------------------------------------------------------------------------------------------
# official checkpoints
# ---------------------------------------------------------------------------------------------
def official_state_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = official_state_shapes(*OFFICIAL["vmamba_tiny_s1l8"][:3])
    return {k: torch.randn(v, generator=g) * 0.05 for k, v in shapes.items()}


def test_official_state_dict_loads_strictly():
    model = VSSM(depths=(2, 2, 8, 2), dims=96, ssm_ratio=1.0)
    sd = official_state_dict()
    model.load_state_dict(checkpoint_filter_fn({"model": sd, "epoch": 264, "max_accuracy": 82.6}, model))
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # DistributedDataParallel prefix, and (out, in, 1, 1) weights of conv-saved 1x1 layers
    wrapped = {"module." + k: (v[..., None, None] if k.endswith("mlp.fc1.weight") else v) for k, v in sd.items()}
    model.load_state_dict(checkpoint_filter_fn({"state_dict": wrapped}, model))
    with pytest.raises(KeyError, match="layers.0.blocks.0.op.conv2d.bias"):
        checkpoint_filter_fn({"model": {**sd, "layers.0.blocks.0.op.conv2d.bias": torch.zeros(96)}}, model)


def test_ema_preference():
    model = meta_model("vmamba_tiny_s1l8")
    plain, ema = official_state_dict(0), official_state_dict(1)
    both = {"model": plain, "model_ema": ema}
    assert checkpoint_filter_fn(both, model)["patch_embed.0.weight"] is plain["patch_embed.0.weight"]
    assert checkpoint_filter_fn(both, model, use_ema=True)["patch_embed.0.weight"] is ema["patch_embed.0.weight"]


def test_official_training_file_loads_through_timm(tmp_path, monkeypatch):
    """A file shaped like the official release: training wrapper plus a yacs CfgNode under 'config'
    (imitated by a stand-in class registered as yacs.config.CfgNode while saving; yacs is not needed
    to load)."""
    yacs, yacs_config = types.ModuleType("yacs"), types.ModuleType("yacs.config")

    class CfgNode(dict):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.__dict__["__immutable__"] = True

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    yacs_config.CfgNode, yacs.config = CfgNode, yacs_config
    sd = official_state_dict()
    path = tmp_path / "vssm1_tiny_0230s_ckpt_epoch_264.pth"
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "yacs", yacs)
        m.setitem(sys.modules, "yacs.config", yacs_config)
        torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": []}, "epoch": 264,
                    "max_accuracy": 82.6, "config": CfgNode(MODEL=CfgNode(TYPE="vssm"))}, path)
    model = timm.create_model("vmamba_tiny_s1l8", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    for k, v in model.state_dict().items():
        assert torch.equal(v, sd[k]), k


def official_ss2d_v05_noz(op: SS2D, x: torch.Tensor) -> torch.Tensor:
    """The official SS2D v05_noz forward, channel-first, transcribed independently of our module's code
    path: einsum projections, explicit route flips/transposes, the reference selective scan."""
    b, _, h, w = x.shape
    k, r, n, e, length = 4, op.dt_rank, op.d_state, op.d_inner, h * w
    x = F.conv2d(x, op.in_proj.weight[:, :, None, None])
    x = F.silu(F.conv2d(x, op.conv2d.weight, padding=1, groups=e))
    rows, cols = x.flatten(2), x.transpose(2, 3).flatten(2)
    xs = torch.stack([rows, cols, rows.flip(-1), cols.flip(-1)], dim=1)
    dts, Bs, Cs = torch.einsum("bkdl,kcd->bkcl", xs, op.x_proj_weight).split([r, n, n], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, op.dt_projs_weight)
    ys = selective_scan(xs.reshape(b, -1, length), dts.reshape(b, -1, length), -op.A_logs.exp(), Bs, Cs, op.Ds,
                        delta_bias=op.dt_projs_bias.flatten(), delta_softplus=True, backend="reference")
    ys = ys.view(b, k, e, length)
    y = ys[:, 0] + ys[:, 2].flip(-1) + (ys[:, 1] + ys[:, 3].flip(-1)).view(b, e, w, h).transpose(2, 3).flatten(2)
    y = F.layer_norm(y.transpose(1, 2), (e,), op.out_norm.weight, op.out_norm.bias, 1e-5).transpose(1, 2)
    return F.conv2d(y.reshape(b, e, h, w), op.out_proj.weight[:, :, None, None])


@pytest.mark.parametrize("ratio", [1.0, 2.0])
def test_ss2d_matches_official_math(ratio):
    torch.manual_seed(0)
    op = SS2D(24, ssm_ratio=ratio, scan_backend="torch")
    with torch.no_grad():
        for p in op.parameters():  # move off the init values (LN at 1/0, D at 1, ...)
            p.add_(0.1 * torch.randn_like(p))
        x = torch.randn(2, 24, 5, 7)  # H != W: the column routes must come back transposed
        assert rel_err(op(x), official_ss2d_v05_noz(op, x)) < 1e-5


@pytest.mark.parametrize("shape", [(4, 3, 10), (2, 6, 1)])
def test_route_projection_dense_equals_grouped(shape):
    """The block-diagonal matmul (CUDA training) and the grouped conv (elsewhere) are the same map."""
    from vision_mamba.layers.ss2d import route_projection
    k, o, i = shape
    g = torch.Generator().manual_seed(1)
    w = torch.randn(k, o, i, dtype=torch.float64, generator=g, requires_grad=True)
    x = torch.randn(2, k * i, 7, dtype=torch.float64, generator=g, requires_grad=True)
    outs = [route_projection(x, w, dense) for dense in (False, True)]
    assert outs[0].shape == (2, k * o, 7)
    assert torch.allclose(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    dy = torch.randn_like(outs[0])
    grads = [torch.autograd.grad(out, (x, w), dy) for out in outs]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    # route k's outputs see route k's inputs only
    x2 = x.detach().clone()
    x2[:, :i] += 1.0
    changed = (route_projection(x2, w, True) - outs[1]).abs().amax(dim=(0, 2)) > 0
    assert changed[:o].all() and not changed[o:].any()


def test_route_projection_rejects_mismatched_shapes():
    from vision_mamba.layers.ss2d import route_projection
    with pytest.raises(ValueError, match=r"x has shape \(2, 9, 7\) and weight \(4, 3, 10\).*\(B, K \* I, L\)"):
        route_projection(torch.randn(2, 9, 7), torch.randn(4, 3, 10))
    with pytest.raises(ValueError, match=r"weight \(12, 10\)"):
        route_projection(torch.randn(2, 40, 7), torch.randn(12, 10), dense=True)


def test_ss2d_with_dense_projections_matches_official_math(monkeypatch):
    """SS2D through the dense branch (what CUDA training takes), forced on the CPU, in fp64 with gradients."""
    import vision_mamba.layers.ss2d as ss2d_mod
    grouped = ss2d_mod.route_projection
    torch.manual_seed(0)
    op = SS2D(24, scan_backend="torch").double()
    with torch.no_grad():
        for p in op.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 24, 5, 7, dtype=torch.float64)
    y_grouped = op(x)
    g_grouped = torch.autograd.grad(y_grouped.square().sum(), list(op.parameters()))
    calls = []
    monkeypatch.setattr(ss2d_mod, "route_projection",
                        lambda x, w, dense=False: calls.append(dense) or grouped(x, w, True))
    y_dense = op(x)
    g_dense = torch.autograd.grad(y_dense.square().sum(), list(op.parameters()))
    assert calls == [False, False]          # on the CPU the module asks for the grouped form
    assert rel_err(y_dense, official_ss2d_v05_noz(op, x)) < 1e-6     # its reference scan vs our torch backend
    assert rel_err(y_dense, y_grouped) < 1e-12
    for (name, _), a, b in zip(op.named_parameters(), g_dense, g_grouped):
        assert rel_err(a, b) < 1e-10, name


# ---------------------------------------------------------------------------------------------
# selective-scan backends inside the model
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def no_tf32():
    """fp32 convs on a GPU (TF32 would swamp the 1e-4 budget); restored afterwards."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


@pytest.mark.triton_interpret
def test_torch_and_triton_backends_agree(no_tf32):
    torch.manual_seed(0)
    kwargs = dict(depths=(1, 1), dims=(16, 32), num_classes=5, drop_path_rate=0.0)
    ref = VSSM(scan_backend="torch", cross_scan_backend="reference", **kwargs).eval()
    tri = VSSM(scan_backend="triton", cross_scan_backend="triton", **kwargs).eval().to(TRITON_DEVICE)
    tri.load_state_dict(ref.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        feats_ref, feats_tri = ref.forward_features(x), tri.forward_features(x.to(TRITON_DEVICE))
        assert rel_err(feats_tri, feats_ref) < 1e-4
        assert rel_err(tri.forward_head(feats_tri), ref.forward_head(feats_ref)) < 1e-4


@pytest.mark.triton_interpret
def test_torch_and_triton_backends_agree_on_ss2d_gradients(no_tf32):
    torch.manual_seed(0)
    ref = SS2D(8, scan_backend="torch", cross_scan_backend="reference")
    tri = SS2D(8, scan_backend="triton", cross_scan_backend="triton").to(TRITON_DEVICE)
    tri.load_state_dict(ref.state_dict())
    x = torch.randn(1, 8, 6, 5)
    ref(x).square().sum().backward()
    tri(x.to(TRITON_DEVICE)).square().sum().backward()
    for (name, a), b in zip(ref.named_parameters(), tri.parameters()):
        assert rel_err(b.grad, a.grad) < 1e-4, name
