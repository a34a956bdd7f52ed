"""Training checkpoints: safetensors weights + a weights_only training state, written atomically.

A checkpoint is a directory `<run>/checkpoints/step-00001234/` holding
    model.safetensors      the weights (DDP's `module.` prefix never reaches the file)
    ema.safetensors        the EMA weights, when EMA is on
    state.pt               optimizer / scheduler / loss-scaler state and RNG states; plain tensors and
                           containers only, so `torch.load(weights_only=True)` reads it and never
                           unpickles code
    meta.json              step, epoch, metrics and the sha256 of every file above

It is written into a temporary sibling directory and renamed into place, so a run killed while saving
leaves either the previous checkpoints or the complete new one, never a half-written one under a
real name.  `find_latest` walks the checkpoints newest first and returns the first that verifies
(files present, sizes and sha256 as recorded, safetensors header readable), warning about each one it
skips.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

_STEP_DIR = re.compile(r"^step-(\d{8})$")
META = "meta.json"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete, corrupt or not ours."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _plain_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous tensors without shared storage (safetensors refuses aliases); no DDP prefix."""
    module = getattr(module, "module", module)
    return {k: v.detach().contiguous().clone() for k, v in module.state_dict().items()}


def save_checkpoint(run_dir: str | os.PathLike, step: int, model: torch.nn.Module,
                    state: dict[str, Any], meta: dict[str, Any],
                    ema: Optional[torch.nn.Module] = None, keep_last: int = 2) -> Path:
    """Write checkpoint `step` under run_dir/checkpoints atomically, then keep only the newest
    keep_last (0: keep all)."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        save_file(_plain_state_dict(model), tmp / "model.safetensors")
        if ema is not None:
            save_file(_plain_state_dict(ema), tmp / "ema.safetensors")
        torch.save(state, tmp / "state.pt")
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
        with open(tmp / META, "w") as f:
            json.dump({**meta, "step": step, "files": files}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():  # a resumed run re-saving a step it saved before its interruption
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint directories of a run, oldest first (temporary directories excluded)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)), key=lambda p: p.name)


def verify_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """meta.json of a checkpoint directory after checking every file it lists; CheckpointError
    (naming the file and what is wrong) otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r}: not a directory (expected a step-XXXXXXXX "
                              f"directory written by tools/train.py)")
    try:
        with open(path / META) as f:
            meta = json.load(f)
        files = meta["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r}: {META} missing or unreadable ({e})") from e
    for name in ("model.safetensors", "state.pt"):
        if name not in files:
            raise CheckpointError(f"checkpoint {str(path)!r}: {META} does not list {name}")
    for name, info in files.items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint file {str(file)!r} is missing")
        size = file.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(f"checkpoint file {str(file)!r} has {size} bytes, {META} recorded "
                                  f"{info['bytes']} (truncated or replaced)")
        if _sha256(file) != info["sha256"]:
            raise CheckpointError(f"checkpoint file {str(file)!r}: sha256 differs from the one recorded "
                                  f"in {META} (corrupted or modified)")
    return meta


def load_weights(file: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A safetensors weights file, with a clear error for anything else (never unpickles)."""
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"weights file {str(file)!r} is not a readable safetensors file ({e})") from e


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor],
                                                      Optional[dict[str, torch.Tensor]], dict[str, Any]]:
    """(meta, model weights, ema weights or None, training state) of a verified checkpoint."""
    path = Path(path)
    meta = verify_checkpoint(path)
    weights = load_weights(path / "model.safetensors")
    ema = load_weights(path / "ema.safetensors") if "ema.safetensors" in meta["files"] else None
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - weights_only refusals and corrupt zips alike
        raise CheckpointError(f"training state {str(path / 'state.pt')!r} could not be loaded with "
                              f"weights_only=True ({type(e).__name__}: {e})") from e
    return meta, weights, ema, state


def find_latest(run_dir: str | os.PathLike) -> Optional[Path]:
    """The newest checkpoint of run_dir that verifies; corrupt ones are skipped with a warning."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            verify_checkpoint(path)
            return path
        except CheckpointError as e:
            warnings.warn(f"--resume auto: skipping {e}", stacklevel=2)
    return None


def load_model_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict) with an error that lists the offending keys and shapes."""
    model = getattr(model, "module", model)
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    mismatched = [f"{k}: file {tuple(weights[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in sorted(set(own) & set(weights)) if own[k].shape != weights[k].shape]
    if missing or unexpected or mismatched:
        def short(items):
            return ", ".join(items[:8]) + (f" ... (+{len(items) - 8})" if len(items) > 8 else "")
        parts = [f"missing keys [{short(missing)}]" if missing else "",
                 f"unexpected keys [{short(unexpected)}]" if unexpected else "",
                 f"shape mismatches [{short(mismatched)}]" if mismatched else ""]
        raise CheckpointError(f"weights {source!r} do not fit {type(model).__name__}: "
                              + "; ".join(p for p in parts if p))
    model.load_state_dict(weights)
