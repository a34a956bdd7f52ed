"""Bad input at the public entry points of the models and heads: one parametrised table, each row the
error type and the words the message must contain (the argument, what it got, what was expected).
Tool arguments: tests/test_export.py (export CLI), tests/test_train.py, test_medseg.py, test_detection.py."""
from __future__ import annotations

import pytest
import timm
import torch

import vision_mamba  # noqa: F401  (registers the models)
from vision_mamba.kernels import set_debug
from vision_mamba.models import umamba_bot
from vision_mamba.tasks.detection import build_detector


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {
        "vim": timm.create_model("vim_tiny_patch16_224", img_size=32, depth=2, embed_dim=32, d_state=4,
                                 num_classes=3).eval(),
        "twin": timm.create_model("vim_tiny_gcnn_patch16_224", img_size=32, depth=2, embed_dim=32,
                                  num_classes=3).eval(),
        "vmamba": timm.create_model("vmamba_tiny_s1l8", depths=(1, 1, 1, 1), dims=16, num_classes=3).eval(),
        "umamba": umamba_bot(2, 1, 2, features_per_stage=(8, 16, 16, 16), deep_supervision=False).eval(),
    }


def _nan(shape):
    x = torch.randn(*shape)
    x.view(-1)[0] = float("nan")
    return x


# (model, input builder, needles); every row raises ValueError
CASES = [
    ("vim", lambda: torch.randn(1, 1, 32, 32), ["VisionMamba", "(1, 1, 32, 32)", "3, H, W"]),           # channels
    ("vim", lambda: torch.randn(1, 3, 40, 40), ["spatial size (40, 40)", "multiples of the patch size"]),
    ("vim", lambda: torch.zeros(1, 3, 32, 32, dtype=torch.uint8), ["torch.uint8", "floating-point"]),
    ("vim", lambda: torch.randn(0, 3, 32, 32), ["(0, 3, 32, 32)", "batch >= 1"]),                         # empty
    ("vim", lambda: torch.randn(1, 3, 32, 32, dtype=torch.float64), ["torch.float64", "expected torch.float32"]),
    ("vim", lambda: torch.randn(1, 3, 32, 32, device="meta"), ["is on meta", "expected cpu"]),            # device
    ("twin", lambda: torch.randn(1, 3, 24, 24), ["spatial size (24, 24)", "patch size"]),
    ("twin", lambda: torch.randn(2, 4, 32, 32), ["(2, 4, 32, 32)", "3, H, W"]),
    ("vmamba", lambda: torch.randn(1, 1, 32, 32), ["VSSM", "(1, 1, 32, 32)", "3, H, W"]),
    ("vmamba", lambda: torch.randn(3, 32, 32), ["(3, 32, 32)", "batch >= 1"]),                            # no batch axis
    ("vmamba", lambda: torch.randn(0, 3, 32, 32), ["(0, 3, 32, 32)", "batch >= 1"]),
    ("vmamba", lambda: torch.randn(1, 3, 32, 32, dtype=torch.float64), ["torch.float64", "torch.autocast"]),
    ("umamba", lambda: torch.randn(1, 3, 32, 32), ["UMambaBot", "in_channels=1"]),
    ("umamba", lambda: torch.randn(0, 1, 32, 32), ["(0, 1, 32, 32)", "batch >= 1"]),
    ("umamba", lambda: torch.randn(1, 1, 32, 32, dtype=torch.float64), ["torch.float64", "expected torch.float32"]),
    ("umamba", lambda: torch.randn(1, 1, 32, 32, device="meta"), ["is on meta", "expected cpu"]),
]


@pytest.mark.parametrize("name, make, needles", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_forward_rejects_bad_input(models, name, make, needles):
    with pytest.raises(ValueError) as info:
        models[name](make())
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


@pytest.mark.parametrize("name, shape", [("vim", (1, 3, 32, 32)), ("twin", (1, 3, 32, 32)),
                                         ("vmamba", (1, 3, 32, 32)), ("umamba", (1, 1, 32, 32))])
def test_debug_mode_rejects_nan_input(models, name, shape):
    """NaN / Inf in the input: an error naming it in debug mode; no check (and no cost) otherwise."""
    x = _nan(shape)
    models[name](x)   # debug mode off: runs (the output is NaN, as in any PyTorch model)
    set_debug(True)
    try:
        with pytest.raises(ValueError, match=r"contains NaN or Inf \(debug mode\)"):
            models[name](x)
    finally:
        set_debug(False)


@pytest.mark.parametrize("build, needles", [
    (lambda: timm.create_model("vim_tiny_patch16_224", depth=0), ["depth=0", "int >= 1"]),
    (lambda: build_detector("vim_tiny_patch16_224", "yolo", 2), ["arch='yolo'", "faster_rcnn"]),
    (lambda: build_detector("vim_tiny_patch16_224", "faster_rcnn", 0), ["num_classes=0", "positive int"]),
    (lambda: umamba_bot(2, 1, 2, features_per_stage=(8,)), ["features_per_stage=(8,)", "at least 2"]),
])
def test_constructors_reject_bad_arguments(build, needles):
    with pytest.raises(ValueError) as info:
        build()
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))
