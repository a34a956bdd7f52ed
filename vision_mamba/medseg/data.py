"""Raw dataset directories of the Medical Segmentation Decathlon (MSD) and nnU-Net v2.

    <root>/dataset.json
    <root>/imagesTr/   MSD: case.nii.gz (4-D for several channels)   nnU-Net v2: case_0000.nii.gz, case_0001...
    <root>/labelsTr/   case.nii.gz (both)
    <root>/imagesTs/   optional, unlabelled

MSD's dataset.json lists the cases (`training`: [{image, label}], `labels`: {"0": "background", ...},
`modality`); nnU-Net v2's lists none (`channel_names`, `labels`: {name: int}, `file_ending`,
`numTraining`), so its cases are the label files found in labelsTr.  Either way a case is
{"image": path or [path per channel], "label": path}, the form MONAI's dictionary transforms take.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import nibabel as nib
import numpy as np

AFFINE_TOLERANCE = 1e-3


@dataclass
class MedicalDataset:
    root: Path
    cases: list[dict]                  # [{"image": str | [str, ...], "label": str}]
    labels: dict[int, str]             # label value -> name, 0 = background
    channels: list[str]                # one name per input channel (MR, CT, T2, ...)
    test_images: list[Union[str, list[str]]] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return max(self.labels) + 1


def _require(meta: dict, key: str, path: Path):
    if key not in meta:
        raise ValueError(f"{path}: dataset.json has no {key!r} key (found {sorted(meta)})")
    return meta[key]


def _msd(root: Path, meta: dict, path: Path) -> tuple[list[dict], dict[int, str], list[str], list]:
    labels = {int(k): str(v) for k, v in _require(meta, "labels", path).items()}
    channels = [str(v) for _, v in sorted(_require(meta, "modality", path).items(), key=lambda kv: int(kv[0]))]
    cases = []
    for i, entry in enumerate(_require(meta, "training", path)):
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise ValueError(f"{path}: training[{i}] = {entry!r}, expected {{'image': ..., 'label': ...}}")
        cases.append({"image": str(root / entry["image"]), "label": str(root / entry["label"])})
    test = [str(root / p) for p in meta.get("test", [])]
    return cases, labels, channels, test


def _nnunet_v2(root: Path, meta: dict, path: Path) -> tuple[list[dict], dict[int, str], list[str], list]:
    channels = [str(v) for _, v in sorted(_require(meta, "channel_names", path).items(), key=lambda kv: int(kv[0]))]
    raw_labels = _require(meta, "labels", path)
    ending = _require(meta, "file_ending", path)
    labels = {}
    for name, value in raw_labels.items():
        if not isinstance(value, int):  # region-based training (tuples of labels) is nnU-Net-only
            raise ValueError(f"{path}: label {name!r} = {value!r}; only integer labels are supported")
        labels[value] = str(name)

    def images(folder: Path, case: str) -> Union[str, list[str]]:
        files = [str(folder / f"{case}_{c:04d}{ending}") for c in range(len(channels))]
        return files[0] if len(files) == 1 else files

    label_files = sorted((root / "labelsTr").glob(f"*{ending}"))
    if not label_files:
        raise ValueError(f"{root / 'labelsTr'}: no label files ending in {ending!r} (file_ending of {path})")
    cases = [{"image": images(root / "imagesTr", f.name[:-len(ending)]), "label": str(f)} for f in label_files]
    test_ids = sorted({f.name[:-len(ending)][:-5] for f in (root / "imagesTs").glob(f"*_0000{ending}")})
    return cases, labels, channels, [images(root / "imagesTs", c) for c in test_ids]


def read_dataset(root: Union[str, Path], validate: bool = True) -> MedicalDataset:
    """The cases and label map of an MSD or nnU-Net v2 raw dataset directory; with `validate`, every
    case is checked by `validate_case` (ValueError naming the file on any problem)."""
    root = Path(root)
    path = root / "dataset.json"
    if not path.is_file():
        raise ValueError(f"{path}: no such file (expected an MSD / nnU-Net raw dataset directory)")
    try:
        meta = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: expected a JSON object")
    reader = _nnunet_v2 if "channel_names" in meta or "file_ending" in meta else _msd
    cases, labels, channels, test = reader(root, meta, path)
    if 0 not in labels:
        raise ValueError(f"{path}: labels {labels} have no background (0)")
    if not cases:
        raise ValueError(f"{path}: no training cases")
    if validate:
        for case in cases:
            validate_case(case, labels)
    return MedicalDataset(root, cases, labels, channels, test)


def _load(path: str) -> nib.spatialimages.SpatialImage:
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file")
    try:
        return nib.load(path)
    except Exception as e:  # noqa: BLE001 - nibabel raises many types for unreadable files
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from e


def validate_case(case: dict, labels: dict[int, str]) -> None:
    """ValueError naming the file when the label's voxel grid (shape, affine within 1e-3) is not its
    image's, or it holds a value that is not a declared label.  nibabel reads headers only, except for
    the label's voxels."""
    label_path = case["label"]
    label = _load(label_path)
    images = case["image"] if isinstance(case["image"], (list, tuple)) else [case["image"]]
    for image_path in images:
        image = _load(image_path)
        if image.shape[:3] != label.shape[:3] or len(label.shape) > 3 and label.shape[3] != 1:
            raise ValueError(f"{label_path}: shape {label.shape} differs from its image {image_path} "
                             f"(shape {image.shape}; the spatial shapes must match)")
        if not np.allclose(image.affine, label.affine, atol=AFFINE_TOLERANCE, rtol=0):
            raise ValueError(f"{label_path}: affine differs from its image {image_path} by up to "
                             f"{np.abs(image.affine - label.affine).max():.3g} (tolerance {AFFINE_TOLERANCE})"
                             f"\nlabel:\n{label.affine}\nimage:\n{image.affine}")
    values = np.unique(np.asanyarray(label.dataobj))
    if not np.all(values == np.round(values)):
        raise ValueError(f"{label_path}: non-integer label values {values[values != np.round(values)][:5]}")
    unknown = sorted(set(values.astype(np.int64).tolist()) - set(labels))
    if unknown:
        raise ValueError(f"{label_path}: label values {unknown} are not declared in dataset.json "
                         f"(labels {labels})")


def case_name(case: dict) -> str:
    """A case's identifier: its label file's name without the NIfTI ending."""
    name = Path(case["label"]).name
    for ending in (".nii.gz", ".nii"):
        if name.endswith(ending):
            return name[:-len(ending)]
    return name


def split_cases(cases: Sequence[dict], val_fraction: float = 0.2, seed: int = 0,
                num_val: Optional[int] = None,
                val_cases: Optional[Sequence[str]] = None) -> tuple[list[dict], list[dict]]:
    """A deterministic (train, val) split: the cases named in `val_cases` (see `case_name`) when given,
    else cases sorted by label path, shuffled with `seed`; at least one case on each side when there
    are two or more."""
    if val_cases:
        names = {case_name(c): c for c in cases}
        unknown = sorted(set(val_cases) - set(names))
        if unknown:
            raise ValueError(f"val_cases {unknown}: no such case (cases: {sorted(names)})")
        if len(set(val_cases)) == len(names):
            raise ValueError(f"val_cases {sorted(val_cases)}: every case is a validation case, none left to train on")
        return ([c for n, c in names.items() if n not in val_cases], [names[n] for n in val_cases])
    ordered = sorted(cases, key=lambda c: c["label"])
    random.Random(seed).shuffle(ordered)
    n_val = num_val if num_val is not None else round(len(ordered) * val_fraction)
    if len(ordered) >= 2:
        n_val = min(max(n_val, 1), len(ordered) - 1)
    else:
        n_val = 0
    return ordered[n_val:], ordered[:n_val]
