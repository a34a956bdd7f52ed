"""Sliding-window inference on NIfTI volumes, written back as NIfTI in each input's own voxel grid.

The model sees the volume as training did (RAS orientation, optional resampling, normalisation); MONAI's
`Invertd` then replays those spatial changes backwards on the label map (nearest interpolation), so the
prediction has the input's shape, and nibabel writes it with the input's affine and header.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import nibabel as nib
import numpy as np
import torch
from monai import transforms as T

from .engine import dice_per_class, sliding_window_predict
from .transforms import val_transforms

NIFTI_ENDINGS = (".nii.gz", ".nii")


def _stem(path: Path) -> str:
    for ending in NIFTI_ENDINGS:
        if path.name.endswith(ending):
            return path.name[:-len(ending)]
    raise ValueError(f"{path}: not a NIfTI file (expected {' or '.join(NIFTI_ENDINGS)})")


def list_inputs(path: Union[str, Path]) -> list[Path]:
    """A NIfTI file, or the NIfTI files of a folder (sorted)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(NIFTI_ENDINGS))
        if not files:
            raise ValueError(f"{path}: no .nii / .nii.gz files")
        return files
    if not path.is_file():
        raise ValueError(f"{path}: no such file or folder")
    _stem(path)
    return [path]


def predict_volume(model: torch.nn.Module, image_path: Union[str, Path], patch_size: Sequence[int],
                   spacing: Optional[Sequence[float]] = None, normalization: str = "mr",
                   ct_window: Sequence[float] = (-1000.0, 1000.0), sw_batch_size: int = 2,
                   overlap: float = 0.5, amp: str = "none",
                   device: Optional[torch.device] = None) -> np.ndarray:
    """The label map (uint8/int16) of one volume in the input's voxel grid (its nibabel array axes)."""
    device = device or next(model.parameters()).device
    preprocess = val_transforms(spacing, normalization, ct_window, with_label=False)
    data = preprocess({"image": str(image_path)})
    model.eval()
    logits = sliding_window_predict(model, data["image"][None].to(device), patch_size, sw_batch_size, overlap, amp)
    # the label map takes the image's metadata and record of applied transforms, which Invertd reverses
    pred = data["image"][:1].clone()
    pred.set_array(logits.argmax(1).cpu().to(torch.float32))
    data["pred"] = pred
    inverted = T.Invertd("pred", transform=preprocess, orig_keys="image", nearest_interp=True)(data)
    label_map = np.asarray(inverted["pred"][0].cpu().numpy()).round()
    return label_map.astype(np.uint8 if label_map.max() < 256 else np.int16)


def write_like(label_map: np.ndarray, reference: Union[str, Path], out_path: Union[str, Path]) -> Path:
    """Save with the reference image's affine and header (dtype set to the label map's)."""
    ref = nib.load(str(reference))
    if label_map.shape != ref.shape[:3]:
        raise ValueError(f"{reference}: prediction shape {label_map.shape} differs from the input's {ref.shape[:3]}")
    header = ref.header.copy()
    header.set_data_dtype(label_map.dtype)
    header.set_slope_inter(None, None)  # an input's intensity scaling must not rescale the labels
    img = nib.Nifti1Image(label_map, ref.affine, header)
    img.set_qform(*ref.get_qform(coded=True))
    img.set_sform(*ref.get_sform(coded=True))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(out_path))
    return out_path


def label_dice(pred: np.ndarray, label_path: Union[str, Path], num_classes: int) -> np.ndarray:
    """Per-class foreground Dice of a prediction against a label file of the same grid."""
    label = np.asanyarray(nib.load(str(label_path)).dataobj)
    if label.shape[:3] != pred.shape:
        raise ValueError(f"{label_path}: shape {label.shape} differs from the prediction's {pred.shape}")
    to_tensor = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64).reshape(pred.shape))[None, None]  # noqa: E731
    return dice_per_class(to_tensor(pred), to_tensor(label), num_classes)


def infer_paths(model: torch.nn.Module, inputs: Sequence[Path], output: Union[str, Path], cfg,
                num_classes: int, class_names: Sequence[str], label: Optional[Union[str, Path]] = None) -> dict:
    """Predict every input into output/<name>.nii.gz; with `label` (one input), its per-class Dice."""
    results: dict = {"predictions": []}
    for path in inputs:
        pred = predict_volume(model, path, cfg.patch_size, cfg.spacing, cfg.normalization, cfg.ct_window,
                              cfg.sw_batch_size, cfg.overlap, cfg.amp)
        results["predictions"].append(str(write_like(pred, path, Path(output) / f"{_stem(path)}.nii.gz")))
        if label is not None:
            dice = label_dice(pred, label, num_classes)
            results["dice"] = {name: float(d) for name, d in zip(class_names, dice)}
            results["mean_dice"] = float(np.nanmean(dice)) if np.isfinite(dice).any() else float("nan")
    return results
