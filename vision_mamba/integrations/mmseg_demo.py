"""The offline data set of the mmseg smoke demo: nucleus vs background on stardist's nuclei image.

`pip install --no-deps stardist` ships one real fluorescence image (img2d.tif, 512 x 512, uint16) and
its instance mask (mask2d.tif, 125 labelled nuclei); the mask's nonzero pixels are the nucleus class.
There is one image, so the split is by region: the top band is the training image, the bottom band
(the last `val_rows` rows) the validation image, and `gap` rows between them are in neither, so no
validation pixel -- nor any nucleus cut by the split -- is ever a training label.  Training draws random
crops and flips from its band (configs/mmseg/demo_nuclei_*.py).

Written in mmseg's layout (img_dir/{train,val}/*.png, ann_dir/{train,val}/*.png, labels 0 / 1), read
by mmseg's BaseSegDataset.  Needs no mmseg itself.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np
from PIL import Image

CLASSES = ("background", "nucleus")


def stardist_nuclei() -> Tuple[np.ndarray, np.ndarray]:
    """(image (512, 512) uint16, instance mask (512, 512) int) from the installed stardist package."""
    spec = importlib.util.find_spec("stardist")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("stardist_nuclei: the stardist package is not installed; "
                                "`pip install --no-deps stardist` ships the image (no other dependency needed)")
    folder = Path(spec.origin).parent / "data" / "images"
    image, mask = (np.array(Image.open(folder / name)) for name in ("img2d.tif", "mask2d.tif"))
    if image.shape != mask.shape or image.ndim != 2:
        raise ValueError(f"stardist_nuclei: image {image.shape} and mask {mask.shape} in {folder}, expected two "
                         f"equal 2-D arrays")
    return image, mask.astype(np.int64)


def to_uint8(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Percentile normalisation (stardist's habit for fluorescence) to 0..255."""
    lo, hi = np.percentile(image, (low, high))
    return (np.clip((image.astype(np.float64) - lo) / max(hi - lo, 1e-8), 0, 1) * 255).round().astype(np.uint8)


def write_nuclei_seg_dataset(out_dir: Union[str, Path], val_rows: int = 128, gap: int = 16) -> Dict:
    """Write the demo data set under `out_dir`; returns a summary (shapes, nucleus fractions)."""
    image, mask = stardist_nuclei()
    height = image.shape[0]
    if not (0 < val_rows and 0 <= gap and val_rows + gap < height):
        raise ValueError(f"write_nuclei_seg_dataset: val_rows={val_rows}, gap={gap} do not fit the image's "
                         f"{height} rows (need 0 < val_rows, 0 <= gap, val_rows + gap < {height})")
    pixels, labels = to_uint8(image), (mask > 0).astype(np.uint8)
    split_at = height - val_rows
    bands = {"train": slice(0, split_at - gap), "val": slice(split_at, height)}
    out = Path(out_dir)
    summary = {"classes": list(CLASSES), "source": "stardist/data/images/img2d.tif, mask2d.tif"}
    for split, rows in bands.items():
        for kind, array in (("img_dir", pixels), ("ann_dir", labels)):
            folder = out / kind / split
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array[rows]).save(folder / f"nuclei_{split}.png")
        summary[split] = {"rows": [rows.start, rows.stop], "shape": list(pixels[rows].shape),
                          "nucleus_fraction": round(float(labels[rows].mean()), 4)}
    return summary
