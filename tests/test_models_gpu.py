"""Every zoo model on a real GPU: 50 SGD steps in bf16 autocast without NaN, and the Triton scan
gives the model the same output as the plain-torch scan."""
import pytest
import timm
import torch
import torch.nn.functional as F

import vision_mamba

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

OURS = [name for name, family in vision_mamba.list_models() if not family.endswith("(timm)")]
SSM = [name for name in OURS if "_gcnn" not in name]


@pytest.mark.parametrize("name", OURS)
def test_bf16_sgd_50_steps_stay_finite(name):
    # lr 0.01 with the gradient norm clipped at 1: at lr 0.05 without clipping the same runs diverged
    # in fp32 too (losses ~100, gradient norms up to 1e4 on VMamba-B, H100, 2026-11-23) and bf16 then
    # turned the divergence into NaN in 1 of 3 seeds: a test of the learning rate, not of precision
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10).cuda().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for step in range(50):
        x = torch.randn(4, 3, 224, 224, device="cuda")
        target = torch.randint(0, 10, (4,), device="cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), target)
        assert torch.isfinite(loss), f"{name}: loss {loss.item()} at step {step}"
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters()), name


@pytest.mark.parametrize("name", SSM)
def test_triton_and_torch_scans_agree(name, monkeypatch):
    # with cuDNN's default TF32 convolutions VMamba's outputs differed by 1.7e-4 (tiny) to 2.6e-4
    # (base) on an H100 (Vim's < 1e-4); TF32 rounding of its many 1x1 convs is the suspected cause,
    # so the comparison runs in full fp32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    fast = timm.create_model(name, scan_backend="triton").cuda().eval()
    plain = timm.create_model(name, scan_backend="torch").cuda().eval()
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 3, 224, 224, device="cuda")
    with torch.no_grad():
        y_fast, y_plain = fast(x), plain(x)
    rel = ((y_fast - y_plain).norm() / y_plain.norm()).item()
    assert rel < 1e-4, f"{name}: rel err {rel:.2e}"
