"""Every model of the zoo builds, runs forward and backward on the CPU at a small size, and is listed."""
import pytest
import timm
import torch

import vision_mamba

OURS = [name for name, family in vision_mamba.list_models() if not family.endswith("(timm)")]


def test_zoo_lists_every_family():
    families = {family for _, family in vision_mamba.list_models()}
    assert families == {"Vim", "VMamba", "MambaOut (timm)"}
    assert all(any(name.startswith(prefix) for name in OURS) for prefix in ("vim_", "vmamba_"))
    # every SSM model has its SSM-free twin
    assert {n for n in OURS if "gcnn" in n} == {"vim_tiny_gcnn_patch16_224", "vim_small_gcnn_patch16_224",
                                                "vim_base_gcnn_patch16_224", "vmamba_tiny_gcnn",
                                                "vmamba_small_gcnn", "vmamba_base_gcnn"}
    with pytest.raises(ValueError, match="family='ViT'"):
        vision_mamba.list_models("ViT")


@pytest.mark.parametrize("name", OURS)
def test_forward_backward_at_64px(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=5)
    x = torch.randn(1, 3, 64, 64)
    out = model(x)
    assert out.shape == (1, 5)
    out.square().sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads), name


@pytest.mark.parametrize("name", ["vim_tiny_patch16_224", "vmamba_tiny_s1l8"])
@pytest.mark.parametrize("shape,dtype,expected", [
    ((1, 4, 64, 64), torch.float32, r"x has shape \(1, 4, 64, 64\), expected \(batch >= 1, 3, H, W\)"),
    ((3, 64, 64), torch.float32, r"x has shape \(3, 64, 64\), expected \(batch >= 1, 3"),
    ((0, 3, 64, 64), torch.float32, r"x has shape \(0, 3, 64, 64\)"),
    ((1, 3, 64, 64), torch.int64, r"x has dtype torch.int64, expected a floating-point image"),
])
def test_bad_image_input_names_the_shape(name, shape, dtype, expected):
    model = timm.create_model(name, num_classes=5)
    with pytest.raises(ValueError, match=expected):
        model(torch.zeros(shape, dtype=dtype))


def test_vim_image_smaller_than_a_patch():
    with pytest.raises(ValueError, match=r"x has shape \(1, 3, 8, 8\), expected .* H, W >= 16"):
        timm.create_model("vim_tiny_patch16_224")(torch.zeros(1, 3, 8, 8))
