"""Weight files into models without running pickled code.

    read_weights(path, sha256=None)        a file's tensors: safetensors, or a pickle-based .pth / .pt /
                                           .bin (the official releases) through torch.load(weights_only=True)
    load_pretrained(model, path, ...)      read_weights, the model family's checkpoint filter, then a strict
                                           load whose error lists every missing, unexpected or mis-shaped key

Every failure is a `CheckpointError` naming the file and what is wrong: a missing, truncated or
corrupt file, a sha256 that differs from the expected one, a pickle that needs anything but tensors
and plain containers (refused before any of it runs), weights that do not fit the model.

A modified byte inside a .pth's tensor data is not detectable by the format (its zip records carry no
checksum torch verifies); pass `sha256` (the official releases publish theirs) where that matters.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from vision_mamba.training.checkpoint import CheckpointError, load_model_weights, load_weights

from ._checkpoint import unwrap_state_dict
from .umamba import _UMamba
from .umamba import checkpoint_filter_fn as umamba_filter
from .vim import VisionMamba
from .vim import checkpoint_filter_fn as vim_filter
from .vmamba import VSSM, _OfficialConfig
from .vmamba import checkpoint_filter_fn as vmamba_filter

# The only classes a weights-only load may build besides tensors and containers: timm's training
# checkpoints store their args as an argparse.Namespace (attributes, no code), the official VMamba
# files their yacs config, read as a plain OrderedDict (see vmamba._OfficialConfig).
SAFE_GLOBALS = [argparse.Namespace, (_OfficialConfig, "yacs.config.CfgNode")]


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unsafe_globals(path: Path) -> str:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - a legacy (non-zip) file cannot be listed; the refusal stands
        return ""
    return f" (it needs {', '.join(names)})" if names else ""


def read_weights(path: str | os.PathLike, sha256: Optional[str] = None) -> dict[str, Any]:
    """The dict stored in `path`, never unpickling code.  `.safetensors` files are read by safetensors;
    anything else by torch.load(weights_only=True) with only SAFE_GLOBALS allowed.  With `sha256`, the
    file's digest must match it first (so a tampered file is refused before it is parsed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_weights: {str(path)!r} does not exist or is not a file")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            raise CheckpointError(f"weights file {str(path)!r} has sha256 {actual}, expected {sha256} "
                                  f"(corrupted, truncated or modified)")
    if path.suffix == ".safetensors":
        return load_weights(path)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"weights file {str(path)!r} refused: it holds pickled objects other than tensors and plain "
            f"containers{_unsafe_globals(path)}, and loading them could run code. Nothing of it was executed. "
            f"Re-save the weights from a trusted environment (e.g. as safetensors) instead.") from e
    except Exception as e:  # noqa: BLE001 - torch reports a truncated zip or bad magic as RuntimeError etc.
        raise CheckpointError(f"weights file {str(path)!r} is not a readable PyTorch checkpoint "
                              f"(truncated or corrupted?): {type(e).__name__}: {e}") from e
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"weights file {str(path)!r} holds a {type(checkpoint).__name__}, expected a dict "
                              f"of tensors (a state dict, or a training checkpoint holding one)")
    return checkpoint


def _filter_for(model: nn.Module) -> Callable[[dict, bool], dict]:
    """The family's checkpoint filter (official key layouts, pos_embed resampling, wrappers)."""
    if isinstance(model, VisionMamba):
        return lambda ckpt, use_ema: vim_filter(ckpt, model, use_ema)
    if isinstance(model, VSSM):
        return lambda ckpt, use_ema: vmamba_filter(ckpt, model, use_ema)
    if isinstance(model, _UMamba):
        return lambda ckpt, use_ema: umamba_filter(ckpt)
    return lambda ckpt, use_ema: unwrap_state_dict(ckpt, use_ema)


def load_pretrained(model: nn.Module, path: str | os.PathLike, *, sha256: Optional[str] = None,
                    use_ema: bool = False) -> nn.Module:
    """Load an official release file or one of ours into `model` (strict), through its family's
    checkpoint filter; returns the model.  Raises CheckpointError (see the module docstring)."""
    checkpoint = read_weights(path, sha256)
    try:
        weights = _filter_for(model)(checkpoint, use_ema)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"weights {str(path)!r} do not fit {type(model).__name__}: {e}") from e
    tensors = OrderedDict((k, v) for k, v in weights.items() if isinstance(v, torch.Tensor))
    if len(tensors) != len(weights):
        odd = [k for k, v in weights.items() if not isinstance(v, torch.Tensor)]
        raise CheckpointError(f"weights {str(path)!r}: entries {odd[:8]} are not tensors (expected a state dict)")
    load_model_weights(model, tensors, str(path))
    return model
