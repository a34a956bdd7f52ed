"""An offline medical-segmentation demo data set from Debian's `mricron-data` package.

Colin27 (`ch2.nii.gz`, one subject's T1 MR at 1 mm) and the AAL atlas drawn on that same brain
(`aal.nii.gz`, 116 regions) become a 4-class problem: background, cerebral grey matter (AAL's cortical
and limbic regions), deep grey nuclei (caudate, putamen, pallidum, thalamus) and the cerebellum
(hemispheres and vermis).

There is one subject, so the split is by region, not by case: the left hemisphere is the training
case and the right hemisphere the validation case, with a band around the midline in neither, so no
validation voxel (nor any voxel within `gap_mm` / 2 of one) is ever a training label.  Random
left-right flips in training make the mirrored hemisphere a fair test of the same anatomy.

Written in the Medical Segmentation Decathlon layout (dataset.json, imagesTr/, labelsTr/), each half
with its own affine (the crop's world position), so every tool of vision_mamba.medseg reads it as is.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence, Union

import nibabel as nib
import numpy as np

log = logging.getLogger(__name__)

TEMPLATES = Path("/usr/share/mricron/templates")
LABELS = {0: "background", 1: "cerebral_grey", 2: "deep_grey", 3: "cerebellum"}
# AAL region numbers (aal.nii.txt): 71-78 caudate, putamen, pallidum, thalamus (left/right);
# 91-116 cerebellar hemispheres and vermis; every other region 1-90 is cortical or limbic grey matter
DEEP_GREY = range(71, 79)
CEREBELLUM = range(91, 117)
TRAIN_CASE, VAL_CASE = "colin27_left", "colin27_right"


def merge_aal(aal: np.ndarray) -> np.ndarray:
    """AAL region numbers -> the demo's 4 classes (uint8)."""
    if aal.min() < 0 or aal.max() > 116:
        raise ValueError(f"AAL values span [{aal.min()}, {aal.max()}], expected region numbers 0..116")
    table = np.zeros(117, np.uint8)
    table[1:91] = 1
    table[list(DEEP_GREY)] = 2
    table[list(CEREBELLUM)] = 3
    return table[aal.astype(np.int64)]


def _resample(image: nib.Nifti1Image, label: nib.Nifti1Image, spacing: float):
    """Both volumes on an isotropic `spacing` grid (MONAI: trilinear image, nearest labels)."""
    from monai.transforms import Spacingd

    data = {"image": _meta_tensor(image), "label": _meta_tensor(label)}
    out = Spacingd(["image", "label"], pixdim=(spacing,) * 3, mode=("bilinear", "nearest"))(data)
    return (out["image"][0].numpy(), out["label"][0].numpy().round().astype(np.uint8),
            out["image"].affine.numpy().astype(np.float64))


def _meta_tensor(img: nib.Nifti1Image):
    from monai.data import MetaTensor

    array = np.asarray(img.dataobj, dtype=np.float32)[None]
    return MetaTensor(array, affine=img.affine)


def _crop(volume: np.ndarray, affine: np.ndarray, lo: Sequence[int], hi: Sequence[int]):
    """volume[lo:hi] and the affine that keeps every voxel at its world position."""
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ np.asarray(lo, np.float64) + affine[:3, 3]
    return volume[sl], shifted


def make_demo(output: Union[str, Path], templates: Union[str, Path] = TEMPLATES, spacing: float = 1.5,
              gap_mm: float = 6.0, margin_mm: float = 6.0) -> dict:
    """Write the demo data set to `output` and return a summary (shapes, voxel counts per class)."""
    templates, output = Path(templates), Path(output)
    files = {name: templates / f"{name}.nii.gz" for name in ("ch2", "aal")}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found: install Debian's mricron-data "
                                f"(`apt-get install -y mricron-data`) or pass --templates DIR")
    if spacing <= 0 or gap_mm < 0 or margin_mm < 0:
        raise ValueError(f"spacing={spacing}, gap_mm={gap_mm}, margin_mm={margin_mm}: expected spacing > 0 "
                         "and non-negative gap and margin")
    t1, aal = nib.load(files["ch2"]), nib.load(files["aal"])
    if t1.shape != aal.shape or not np.allclose(t1.affine, aal.affine, atol=1e-3):
        raise ValueError(f"{files['aal']}: shape {aal.shape} / affine do not match {files['ch2']} {t1.shape}")
    merged = nib.Nifti1Image(merge_aal(np.asarray(aal.dataobj)), aal.affine)
    image, label, affine = _resample(t1, merged, spacing)
    if not np.allclose(np.abs(np.diag(affine[:3, :3])), spacing, atol=1e-3) or affine[0, 0] <= 0:
        raise ValueError(f"unexpected resampled affine {affine.tolist()}: expected RAS axes at {spacing} mm")

    # the brain's bounding box (labelled voxels) plus a margin of head around it
    margin = int(round(margin_mm / spacing))
    coords = np.argwhere(label > 0)
    lo = np.maximum(coords.min(0) - margin, 0)
    hi = np.minimum(coords.max(0) + 1 + margin, label.shape)
    # first axis is world x (R): voxel centre i sits at x = affine[0, 0] * i + affine[0, 3]
    mid = int(round(-affine[0, 3] / affine[0, 0]))
    half_gap = int(np.ceil(gap_mm / 2 / spacing))
    halves = {TRAIN_CASE: (lo[0], mid - half_gap), VAL_CASE: (mid + half_gap + 1, hi[0])}

    for sub in ("imagesTr", "labelsTr"):
        (output / sub).mkdir(parents=True, exist_ok=True)
    summary = {"spacing_mm": spacing, "gap_mm": 2 * half_gap * spacing + spacing, "cases": {}}
    for case, (x0, x1) in halves.items():
        box_lo, box_hi = (x0, lo[1], lo[2]), (x1, hi[1], hi[2])
        img, img_affine = _crop(image, affine, box_lo, box_hi)
        lab, _ = _crop(label, affine, box_lo, box_hi)
        nib.save(nib.Nifti1Image(img.astype(np.float32), img_affine), output / "imagesTr" / f"{case}.nii.gz")
        nib.save(nib.Nifti1Image(lab.astype(np.uint8), img_affine), output / "labelsTr" / f"{case}.nii.gz")
        world_x = (img_affine[0, 0] * np.array([0, img.shape[0] - 1]) + img_affine[0, 3]).round(1).tolist()
        summary["cases"][case] = {"shape": list(img.shape), "world_x_mm": world_x,
                                  "voxels": {LABELS[c]: int((lab == c).sum()) for c in LABELS}}
    meta = {
        "name": "Colin27-AAL-demo",
        "description": "Colin27 T1 (mricron-data) with AAL merged into 3 grey-matter classes; "
                       f"left hemisphere = {TRAIN_CASE} (train), right = {VAL_CASE} (validation), "
                       f"{summary['gap_mm']:g} mm midline band in neither",
        "reference": "Holmes et al. 1998 (Colin27); Tzourio-Mazoyer et al. 2002 (AAL)",
        "tensorImageSize": "3D",
        "modality": {"0": "MR"},
        "labels": {str(k): v for k, v in LABELS.items()},
        "numTraining": len(halves),
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in halves],
        "test": [],
    }
    (output / "dataset.json").write_text(json.dumps(meta, indent=1))
    log.info("wrote %s", output)
    return summary
