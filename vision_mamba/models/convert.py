"""Official checkpoint files -> safetensors of our models (library side of tools/convert_checkpoint.py)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import timm
from safetensors.torch import save_file

from .weights import load_pretrained


def convert_checkpoint(model_name: str, src: str | os.PathLike, dst: str | os.PathLike,
                       num_classes: int = 1000, sha256: str | None = None) -> int:
    """Load `src` through the model's checkpoint_filter_fn (strict; `load_pretrained`: no pickled code
    runs, a truncated or tampered file or a key mismatch is a CheckpointError naming it) and write its
    state dict to `dst` as safetensors, atomically (temp file in the same folder, then rename).
    sha256: the digest `src` must have. Returns the tensor count."""
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"convert_checkpoint: input {src} does not exist")
    model = load_pretrained(timm.create_model(model_name, num_classes=num_classes), src, sha256=sha256)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=dst.name, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"model": model_name, "source": src.name})
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return len(state)
