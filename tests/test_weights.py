"""Weight files into models without running pickled code (vision_mamba.models.weights): a pickle that
would run code is refused and the code does not run; truncated, tampered and mis-shaped files give a
CheckpointError naming the file and what is wrong."""
from __future__ import annotations

import os
import pickle

import pytest
import timm
import torch
from safetensors.torch import save_file

import vision_mamba  # noqa: F401
from vision_mamba.models.weights import file_sha256, load_pretrained, read_weights
from vision_mamba.training.checkpoint import CheckpointError


def small_vim(**kw):
    torch.manual_seed(0)
    return timm.create_model("vim_tiny_patch16_224", img_size=32, depth=2, embed_dim=32, d_state=4,
                             num_classes=3, **kw)


class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_safetensors_and_pth_round_trip(tmp_path):
    src, dst = small_vim(), small_vim()
    torch.nn.init.normal_(src.head.weight)
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, tmp_path / "w.safetensors")
    torch.save({"model": src.state_dict()}, tmp_path / "w.pth")   # a timm / official style training file
    for name in ("w.safetensors", "w.pth"):
        load_pretrained(dst, tmp_path / name, sha256=file_sha256(tmp_path / name))
        assert torch.equal(dst.head.weight, src.head.weight)


def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": _RunsCode(marker)}, f)
    torch.save({"model": {"x": torch.ones(1)}, "extra": _RunsCode(marker)}, tmp_path / "evil2.pth")
    for p in (path, tmp_path / "evil2.pth"):
        with pytest.raises(CheckpointError) as info:
            read_weights(p)
        assert p.name in str(info.value)
    assert not marker.exists()


def test_truncated_and_tampered_files(tmp_path):
    src = small_vim()
    good = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, good)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        read_weights(truncated)
    digest = file_sha256(good)
    data = bytearray(good.read_bytes())
    data[-5] ^= 0xFF                      # one flipped byte in the tensor data
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"tampered.safetensors.*expected {digest}"):
        read_weights(tampered, sha256=digest)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_weights(tmp_path / "missing.pth")


def test_shape_mismatch_lists_the_keys(tmp_path):
    src = small_vim()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, path)
    wider = timm.create_model("vim_tiny_patch16_224", img_size=32, depth=2, embed_dim=32, d_state=4, num_classes=7)
    with pytest.raises(CheckpointError) as info:
        load_pretrained(wider, path)
    assert "head.weight" in str(info.value) and "head.bias" in str(info.value)
