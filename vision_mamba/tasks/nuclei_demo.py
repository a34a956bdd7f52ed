"""The offline detection demo's data: COCO-format tiles of stardist's real nuclei image.

stardist ships one 512x512 fluorescence image of nuclei (`stardist/data/images/img2d.tif`, uint16)
with its instance mask (`mask2d.tif`, one label per nucleus).  `make_nuclei_tiles` cuts both into
tiles, writes the image tiles as 8-bit PNGs (percentile-normalised over the whole image) and the
nuclei of each tile as COCO annotations (one category, 'nucleus'): box and area from the tile's part
of the instance mask, the mask itself as RLE.  A nucleus cut by a tile border keeps the part inside
the tile when that part has at least `min_area` pixels.

The tiles of the right-most `val_columns` tile columns form val.json, the others train.json: the two
never share a pixel (with overlapping tiles, a training tile reaching into the validation columns is
dropped).  One image is a smoke test of the pipeline, not a benchmark.

stardist itself needs TensorFlow; only its data files are read here, so install it without
dependencies: `python3 -m pip install --no-deps stardist`.  Reading the TIFFs needs tifffile and the
annotations pycocotools (both in the [det] extra).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Optional

import numpy as np

INSTALL_HINT = "python3 -m pip install --no-deps stardist   # only its data files are read (no TensorFlow needed)"
CATEGORIES = [{"id": 1, "name": "nucleus", "supercategory": "cell"}]


def stardist_demo_files() -> tuple[Path, Path]:
    """(image, instance mask) paths inside the installed stardist package, found without importing it
    (its import needs TensorFlow and scikit-image)."""
    spec = importlib.util.find_spec("stardist")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the nuclei demo reads stardist's sample image; install it with:\n    {INSTALL_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "images"
    files = folder / "img2d.tif", folder / "mask2d.tif"
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"stardist is installed but lacks {missing}; reinstall it with:\n    {INSTALL_HINT}")
    return files


def normalise_to_uint8(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Percentile normalisation (csbdeep's, stardist's default: 1 / 99.8) to 0..255."""
    lo, hi = np.percentile(image, (low, high))
    scaled = (image.astype(np.float64) - lo) / max(hi - lo, 1e-12)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def instance_annotations(instances: np.ndarray, image_id: int, first_id: int, min_area: int = 16) -> list[dict]:
    """COCO annotations (category 1) of every instance label > 0 of a 2-D label map with at least
    `min_area` pixels: RLE mask, XYWH box and area from pycocotools."""
    from pycocotools import mask as mask_utils

    if instances.ndim != 2:
        raise ValueError(f"instance_annotations: instances has shape {instances.shape}, expected (H, W)")
    annotations = []
    for label in np.unique(instances):
        if label == 0:
            continue
        binary = np.asfortranarray((instances == label).astype(np.uint8))
        if binary.sum() < min_area:
            continue
        rle = mask_utils.encode(binary)
        annotations.append({
            "id": first_id + len(annotations), "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "bbox": [float(v) for v in mask_utils.toBbox(rle)], "area": float(mask_utils.area(rle)),
            "segmentation": {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")},
        })
    return annotations


def _write_coco(path: Path, images: list[dict], annotations: list[dict], description: str) -> None:
    path.write_text(json.dumps({"info": {"description": description}, "licenses": [], "images": images,
                                "annotations": annotations, "categories": CATEGORIES}))


def make_nuclei_tiles(output: str | Path, tile: int = 128, stride: Optional[int] = None, val_columns: int = 1,
                      min_area: int = 16, files: Optional[tuple[Path, Path]] = None) -> dict:
    """Write output/images/*.png, output/train.json and output/val.json (see the module docstring).

    tile: tile side in pixels; stride: step between tiles (default: tile, no overlap); val_columns: how
    many of the tile columns at the right edge are held out (0: no val.json); files: (image, mask)
    paths (default: stardist's).  Returns a summary (counts, paths)."""
    import tifffile
    from PIL import Image

    stride = stride or tile
    image_file, mask_file = files or stardist_demo_files()
    image, instances = tifffile.imread(image_file), tifffile.imread(mask_file)
    if image.ndim != 2 or image.shape != instances.shape:
        raise ValueError(f"nuclei demo: image {image.shape} and mask {instances.shape} must be the same 2-D size")
    height, width = image.shape
    if not (0 < tile <= min(height, width)) or not 0 < stride <= tile:
        raise ValueError(f"nuclei demo: tile={tile}, stride={stride}: expected 0 < stride <= tile <= {min(height, width)}")
    columns = list(range(0, width - tile + 1, stride))
    if not 0 <= val_columns < len(columns):
        raise ValueError(f"nuclei demo: val_columns={val_columns}, expected 0..{len(columns) - 1} "
                         f"({len(columns)} tile columns)")
    val_x0 = columns[len(columns) - val_columns] if val_columns else width

    out = Path(output)
    (out / "images").mkdir(parents=True, exist_ok=True)
    pixels = normalise_to_uint8(image)
    splits: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], [])}
    image_id = 0
    for y in range(0, height - tile + 1, stride):
        for x in columns:
            split = "val" if x >= val_x0 else "train"
            if split == "train" and x + tile > val_x0:
                continue  # would share pixels with the validation columns
            image_id += 1
            name = f"nuclei_y{y:03d}_x{x:03d}.png"
            Image.fromarray(pixels[y:y + tile, x:x + tile]).save(out / "images" / name)
            images, annotations = splits[split]
            images.append({"id": image_id, "file_name": name, "width": tile, "height": tile})
            annotations += instance_annotations(instances[y:y + tile, x:x + tile], image_id,
                                                first_id=1 + sum(len(a) for _, a in splits.values()),
                                                min_area=min_area)
    source = f"stardist {image_file.name} / {mask_file.name}, {tile}px tiles, stride {stride}"
    summary = {"images": str(out / "images"), "tile": tile, "stride": stride, "source": source}
    for split, (images, annotations) in splits.items():
        if images:
            _write_coco(out / f"{split}.json", images, annotations, f"{source}: {split} split")
            summary[split] = {"annotations": str(out / f"{split}.json"), "images": len(images),
                              "instances": len(annotations)}
    return summary


__all__ = ["INSTALL_HINT", "instance_annotations", "make_nuclei_tiles", "normalise_to_uint8", "stardist_demo_files"]
