"""U-Mamba (vision_mamba.models.umamba): shapes, gradients, any input size, the Mamba path, bad input,
and the official layout.  CPU, tiny networks (3 stages of 4, 8, 16 channels).
"""
from __future__ import annotations

import math

import pytest
import torch

from conftest import rel_err
from vision_mamba.layers.mamba_mixer import MambaMixer
from vision_mamba.models.umamba import (MambaLayer, UMambaBot, UMambaEnc, checkpoint_filter_fn,
                                        official_block_counts, umamba_bot, umamba_enc)

FEATURES = (4, 8, 16)
SHAPES = {2: (2, 1, 20, 20), 3: (1, 1, 12, 12, 12)}
ODD_SHAPES = {2: (1, 1, 19, 23), 3: (1, 1, 11, 13, 9)}
CLASSES = [UMambaBot, UMambaEnc]


def tiny(cls, spatial_dims: int, **kwargs):
    torch.manual_seed(0)
    cfg = dict(features_per_stage=FEATURES, n_conv_per_stage=(1, 2, 1), deep_supervision=True, d_state=4,
               scan_backend="torch")
    cfg.update(kwargs)
    return cls(spatial_dims, 1, 3, **cfg)


def expected_shapes(shape, num_classes: int = 3, strides=(1, 2, 2)):
    """Deep-supervision output shapes: output j is ceil(size / prod(strides[:j + 1]))."""
    out = []
    for j in range(len(strides) - 1):
        down = math.prod(strides[:j + 1])
        out.append((shape[0], num_classes, *(math.ceil(s / down) for s in shape[2:])))
    return out


def mamba_parameters(model):
    return [(f"{name}.{p_name}", p) for name, m in model.named_modules() if isinstance(m, MambaLayer)
            for p_name, p in m.named_parameters()]


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_forward_backward_deep_supervision(cls, spatial_dims):
    model = tiny(cls, spatial_dims)
    x = torch.randn(SHAPES[spatial_dims])
    outputs = model(x)
    assert isinstance(outputs, list)
    assert [tuple(o.shape) for o in outputs] == expected_shapes(x.shape)
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outputs)
    loss.backward()
    for name, p in model.named_parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all(), name
    params = mamba_parameters(model)
    assert params
    for name, p in params:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_odd_input_sizes(cls, spatial_dims):
    model = tiny(cls, spatial_dims).eval()
    x = torch.randn(ODD_SHAPES[spatial_dims])
    with torch.no_grad():
        outputs = model(x)
        assert [tuple(o.shape) for o in outputs] == expected_shapes(x.shape)
        model.deep_supervision = False
        out = model(x)
    assert out.shape == (x.shape[0], 3, *x.shape[2:])
    assert torch.isfinite(out).all()


def test_torch_and_reference_scans_agree():
    x = torch.randn(1, 1, 12, 12)
    outputs = {}
    for backend in ("torch", "reference"):
        model = tiny(UMambaEnc, 2, scan_backend=backend).eval()
        with torch.no_grad():
            outputs[backend] = model(x)
    for a, b in zip(outputs["torch"], outputs["reference"]):
        assert rel_err(a, b) < 1e-5


def test_enc_has_more_mamba_layers_than_bot():
    def count(model):
        return sum(isinstance(m, MambaMixer) for m in model.modules())
    for spatial_dims in (2, 3):
        bot, enc = tiny(UMambaBot, spatial_dims), tiny(UMambaEnc, spatial_dims)
        assert count(bot) == 1
        assert count(enc) > count(bot)
    # the official placement: after every stage in 3-D, every other stage ending with the last in 2-D
    assert [isinstance(m, MambaLayer) for m in tiny(UMambaEnc, 3).encoder.mamba_layers] == [True] * 3
    assert [isinstance(m, MambaLayer) for m in tiny(UMambaEnc, 2).encoder.mamba_layers] == [True, False, True]


def test_channel_tokens_follow_input_size():
    # 16 x 16 input, strides (1, 2, 2): the last stage has 4 x 4 = 16 positions <= 32 channels
    model = tiny(UMambaEnc, 2, features_per_stage=(4, 8, 32), input_size=(16, 16)).eval()
    last = model.encoder.mamba_layers[2]
    assert last.channel_token and last.dim == 16 and model.channel_token_stages == (2,)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 15, 13))[0].shape == (1, 3, 15, 13)   # pads to 16 x 16
        with pytest.raises(ValueError, match="input_size"):
            model(torch.randn(1, 1, 20, 16))


def test_official_layout_and_checkpoint_filter():
    model = tiny(UMambaBot, 3)
    sd = model.state_dict()
    # key names of the official UMambaBot_3d (BasicResBlock, BasicBlockD, UpsampleLayer, seg layers, Mamba)
    for key in ("encoder.stem.0.conv1.weight", "encoder.stem.0.norm2.bias", "encoder.stem.0.conv3.weight",
                "encoder.stages.1.1.conv1.conv.weight", "encoder.stages.1.1.conv2.norm.weight",
                "decoder.upsample_layers.0.conv.weight", "decoder.stages.1.0.conv1.weight",
                "decoder.seg_layers.1.bias", "mamba_layer.norm.weight", "mamba_layer.mamba.A_log",
                "mamba_layer.mamba.dt_proj.bias"):
        assert key in sd, key
    # the official checkpoint's aliases are dropped, nnU-Net's 'network_weights' is unwrapped
    official = dict(sd)
    official["decoder.encoder.stem.0.conv1.weight"] = sd["encoder.stem.0.conv1.weight"]
    official["encoder.stages.1.1.conv1.all_modules.0.weight"] = sd["encoder.stages.1.1.conv1.conv.weight"]
    assert checkpoint_filter_fn({"network_weights": official}).keys() == sd.keys()
    # 3-D concatenates the full-resolution skip, 2-D (official) does not
    assert model.decoder.stages[-1][0].conv1.in_channels == 2 * FEATURES[0]
    assert tiny(UMambaBot, 2).decoder.stages[-1][0].conv1.in_channels == FEATURES[0]


def test_official_block_counts_and_factories():
    assert official_block_counts((1, 3, 4, 6, 6, 6), (1, 1, 1, 1, 1)) == ((1, 3, 4, 1, 1, 1), (1, 1, 1, 1, 1))
    assert official_block_counts((2, 2, 2, 2, 2), (3, 3, 3, 3)) == ((2, 2, 2, 1, 1), (3, 3, 3, 1))
    bot = umamba_bot(2, 1, 2, features_per_stage=(4, 8, 16, 32))
    enc = umamba_enc(3, 1, 2, features_per_stage=(4, 8, 16, 32))
    assert bot.deep_supervision and enc.deep_supervision
    assert [len(stage) for stage in bot.encoder.stages] == [1, 3, 1, 1]
    assert bot.total_stride == (8, 8) and enc.total_stride == (8, 8, 8)


GOOD = dict(spatial_dims=2, in_channels=1, num_classes=3, features_per_stage=FEATURES)
CONFIG_ERRORS = [
    ("spatial_dims", dict(spatial_dims=4), r"spatial_dims=4, expected 2 or 3"),
    ("features_per_stage", dict(features_per_stage=(4,)), r"features_per_stage=\(4,\)"),
    ("kernel_sizes-length", dict(kernel_sizes=(3, 3)), r"kernel_sizes has 2 entries, expected .* \(3\)"),
    ("strides-length", dict(strides=(1, 2, 2, 2)), r"strides has 4 entries, expected .* \(3\)"),
    ("n_conv_per_stage-length", dict(n_conv_per_stage=(1, 1)), r"n_conv_per_stage has 2 entries"),
    ("n_conv_per_stage_decoder-length", dict(n_conv_per_stage_decoder=(1, 1, 1)),
     r"n_conv_per_stage_decoder has 3 entries, expected .* \(2\)"),
    ("kernel-axes", dict(kernel_sizes=((3, 3, 3), 3, 3)), r"kernel_sizes\[0\]=\(3, 3, 3\), expected .* 2 of them"),
    ("kernel-even", dict(kernel_sizes=(3, 4, 3)), r"kernel_sizes\[1\]=4, expected an odd"),
    ("in_channels", dict(in_channels=0), r"in_channels=0"),
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("case,kwargs,message", CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
def test_bad_config(cls, case, kwargs, message):
    with pytest.raises(ValueError, match=f"{cls.__name__}: {message}"):
        cls(**{**GOOD, **kwargs})


def test_bad_mamba_stages():
    with pytest.raises(ValueError, match=r"mamba_stages=\[3\], expected stage indices in \[0, 3\)"):
        UMambaEnc(**GOOD, mamba_stages=[3])


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("spatial_dims,shape,message", [
    (3, (1, 1, 12, 12), r"x has shape \(1, 1, 12, 12\), expected \(batch >= 1, in_channels=1, D, H, W\)"),
    (2, (1, 1, 1, 12, 12), r"x has shape \(1, 1, 1, 12, 12\), expected \(batch >= 1, in_channels=1, H, W\)"),
    (2, (1, 2, 12, 12), r"x has shape \(1, 2, 12, 12\), expected \(batch >= 1, in_channels=1, H, W\)"),
], ids=["3d-given-4d", "2d-given-5d", "channels"])
def test_bad_input(cls, spatial_dims, shape, message):
    model = tiny(cls, spatial_dims)
    with pytest.raises(ValueError, match=f"{cls.__name__}: {message}"):
        model(torch.randn(shape))


@pytest.mark.parametrize("channel_token", [False, True])
def test_mamba_layer_output_is_contiguous(channel_token):
    # a channels-last-strided output crashed the next conv's backward on CPU with one thread
    # (heap corruption in torch 2.15's conv backward); the layer hands on a contiguous tensor
    x = torch.randn(2, 8, 4, 5)
    layer = MambaLayer(20 if channel_token else 8, d_state=4, channel_token=channel_token, scan_backend="torch")
    out = layer(x)
    assert out.shape == x.shape and out.is_contiguous()
