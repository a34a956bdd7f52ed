"""tools/convert_checkpoint.py: an official-format .pth in, a safetensors file that loads strictly out."""
import subprocess
import sys
from pathlib import Path

import timm
import torch

import vision_mamba  # noqa: F401  (registers the zoo with timm)

ROOT = Path(__file__).resolve().parents[1]


def test_converts_wrapped_pth_to_safetensors(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("vim_tiny_patch16_224", depth=2)
    src = tmp_path / "official.pth"
    # the release files wrap the weights in 'model' and carry 'module.' prefixes
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, src)
    dst = tmp_path / "out" / "vim.safetensors"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "convert_checkpoint.py"),
                           "--model", "vim_tiny_patch16_224", "--input", str(src), "--output", str(dst)],
                          capture_output=True, text=True, timeout=300)
    # depth=2 is not the registered depth: the conversion must fail loudly, not drop keys
    assert proc.returncode != 0 and "missing keys [layers." in proc.stderr, proc.stderr[-2000:]
    assert not dst.exists()
    full = timm.create_model("vim_tiny_patch16_224")
    torch.save({"model": {f"module.{k}": v for k, v in full.state_dict().items()}}, src)
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "convert_checkpoint.py"),
                           "--model", "vim_tiny_patch16_224", "--input", str(src), "--output", str(dst)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not list(dst.parent.glob("*.tmp"))
    loaded = timm.create_model("vim_tiny_patch16_224", pretrained=True,
                               pretrained_cfg_overlay=dict(file=str(dst)))
    for k, v in full.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
