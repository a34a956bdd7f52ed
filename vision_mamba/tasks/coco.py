"""COCO-format detection data for torchvision's detectors, and COCO mAP with pycocotools' COCOeval.

Reading: torchvision's CocoDetection (pycocotools underneath) wrapped for transforms v2, which turns
each image's annotations into XYXY boxes; masks are decoded here (`annotation_mask`: polygons,
uncompressed and compressed RLE), not by the wrapper, which hands compressed RLE to
`pycocotools.mask.frPyObjects` and fails on it (pycocotools 2.0.11 reads any dict as uncompressed); category ids
become contiguous labels 1..K (0 is torchvision's background) and crowd regions are dropped from the
training targets (COCOeval still sees them in the ground truth).  Evaluation maps predictions back
to category ids and XYWH boxes (masks as RLE) and runs COCOeval for 'bbox' and / or 'segm'.

Needs the [det] extra (pycocotools); importing this module without it says so.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
from torchvision.transforms import v2

try:
    from pycocotools import mask as mask_utils
    from pycocotools.cocoeval import COCOeval
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("vision_mamba.tasks.coco needs pycocotools: pip install 'vision-mamba[det]' "
                      "(or: pip install pycocotools)") from e

# COCOeval.stats, in its summarize() order
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
IOU_TYPES = ("bbox", "segm")


class CocoDetectionDataset(torch.utils.data.Dataset):
    """(image (3, H, W) float in [0, 1], target) pairs in torchvision's detection format.

    target: boxes (N, 4) float XYXY pixels, labels (N,) int64 in 1..num_classes, image_id (int) and,
    with masks=True, masks (N, H, W) uint8.  Crowd annotations are left out of the targets.
    hflip: probability of a horizontal flip (training); boxes and masks follow the image.
    """

    def __init__(self, images: str | Path, annotations: str | Path, *, masks: bool = False, hflip: float = 0.0):
        images, annotations = Path(images), Path(annotations)
        if not annotations.is_file():
            raise FileNotFoundError(f"COCO annotations {str(annotations)!r}: no such file")
        if not images.is_dir():
            raise FileNotFoundError(f"COCO images folder {str(images)!r}: no such directory")
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"CocoDetectionDataset: hflip={hflip!r}, expected a probability in [0, 1]")
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress lines
            base = CocoDetection(str(images), str(annotations))
        self.coco = base.coco
        self.masks = masks
        self.data = wrap_dataset_for_transforms_v2(base, target_keys=("image_id", "boxes", "labels", "iscrowd"))
        self.cat_ids = sorted(self.coco.getCatIds())
        if not self.cat_ids:
            raise ValueError(f"COCO annotations {str(annotations)!r} declare no categories")
        self.label_of = {cat: i + 1 for i, cat in enumerate(self.cat_ids)}
        self.class_names = [self.coco.cats[c].get("name", str(c)) for c in self.cat_ids]
        self.image_ids = list(base.ids)
        steps = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]
        if hflip > 0:
            steps.append(v2.RandomHorizontalFlip(hflip))
        steps.append(v2.SanitizeBoundingBoxes(min_size=1))  # degenerate boxes would stop torchvision's heads
        self.transforms = v2.Compose(steps)

    @property
    def num_classes(self) -> int:
        return len(self.cat_ids)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        image, raw = self.data[index]
        height, width = image.height, image.width
        n = len(raw.get("labels", ()))
        keep = torch.tensor([not c for c in raw.get("iscrowd", [])], dtype=torch.bool)
        boxes = raw["boxes"][keep] if n else torch.zeros(0, 4)
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": torch.tensor([self.label_of[int(c)] for c in raw["labels"]], dtype=torch.int64)[keep]
            if n else torch.zeros(0, dtype=torch.int64),
        }
        if self.masks:
            # the wrapper's boxes / labels follow loadAnns(getAnnIds(image)): the same list, the same order
            anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=int(raw["image_id"])))
            masks = torch.from_numpy(np.stack([annotation_mask(a["segmentation"], height, width) for a in anns])) \
                if n else torch.zeros(0, height, width, dtype=torch.uint8)
            target["masks"] = tv_tensors.Mask(masks[keep] if n else masks)
        image, target = self.transforms(image, target)
        out = {"boxes": target["boxes"].as_subclass(torch.Tensor).float(), "labels": target["labels"],
               "image_id": int(raw["image_id"])}
        if self.masks:
            out["masks"] = target["masks"].as_subclass(torch.Tensor).to(torch.uint8)
        return image, out


def annotation_mask(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO annotation's segmentation -> (height, width) uint8 mask: polygons (a list of flat x, y
    lists), uncompressed RLE (counts a list) or compressed RLE (counts a str or bytes)."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
        counts = segmentation["counts"]
        rle = {"size": list(segmentation["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise ValueError(f"COCO segmentation {str(segmentation)[:80]!r}: expected polygons (a list) or an RLE "
                         f"dict with 'counts' (a list, or a str / bytes)")
    mask = mask_utils.decode(rle)
    if mask.shape[:2] != (height, width):
        raise ValueError(f"COCO segmentation of size {mask.shape[:2]} on an image of {(height, width)}")
    return mask.astype(np.uint8)


def collate(batch):
    """Detection batches are lists: images of different sizes, targets of different lengths."""
    return tuple(zip(*batch))


def to_coco_results(prediction: dict, image_id: int, cat_ids: Sequence[int], masks: bool,
                    mask_threshold: float = 0.5) -> list[dict]:
    """One image's torchvision prediction -> COCO result dicts (category ids, XYWH boxes, RLE masks)."""
    boxes = prediction["boxes"].detach().float().cpu()
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    scores = prediction["scores"].detach().float().cpu().tolist()
    labels = prediction["labels"].detach().cpu().tolist()
    rles = []
    if masks:
        binary = (prediction["masks"].detach().float().cpu()[:, 0] > mask_threshold).numpy().astype(np.uint8)
        rles = mask_utils.encode(np.asfortranarray(binary.transpose(1, 2, 0))) if len(binary) else []
    results = []
    for i, (box, score, label) in enumerate(zip(xywh, scores, labels)):
        result = {"image_id": image_id, "category_id": int(cat_ids[label - 1]), "bbox": [round(v, 2) for v in box],
                  "score": float(score)}
        if masks:
            rle = rles[i]
            result["segmentation"] = {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
        results.append(result)
    return results


def coco_eval(coco, results: list[dict], image_ids: Iterable[int],
              iou_types: Sequence[str] = ("bbox",)) -> dict[str, float]:
    """COCOeval over `image_ids` -> {'bbox_AP': ..., 'bbox_AP50': ..., 'segm_AP': ...} (fractions in
    [0, 1]; COCO's -1, "no ground truth of that size", kept as -1).  No detection at all scores 0."""
    bad = [t for t in iou_types if t not in IOU_TYPES]
    if bad:
        raise ValueError(f"coco_eval: iou_types={list(iou_types)}, expected a subset of {list(IOU_TYPES)}")
    image_ids = sorted(set(image_ids))
    metrics: dict[str, float] = {}
    for iou_type in iou_types:
        if not results:  # COCO.loadRes refuses an empty list
            metrics.update({f"{iou_type}_{name}": 0.0 for name in STAT_NAMES})
            continue
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            detections = coco.loadRes(results)
            evaluator = COCOeval(coco, detections, iou_type)
            evaluator.params.imgIds = image_ids
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        metrics.update({f"{iou_type}_{name}": float(v) for name, v in zip(STAT_NAMES, evaluator.stats)})
        metrics[f"{iou_type}_summary"] = printed.getvalue().strip()
    return metrics


@torch.no_grad()
def evaluate_detector(model: torch.nn.Module, loader, dataset: CocoDetectionDataset, device: torch.device,
                      iou_types: Sequence[str] = ("bbox",), autocast=None, progress: bool = True,
                      max_images: Optional[int] = None) -> dict[str, float]:
    """Run `model` (eval mode) over `loader` (batches of `dataset`) and score it with COCOeval."""
    from tqdm import tqdm

    model.eval()
    results, seen = [], []
    with_masks = "segm" in iou_types
    for images, targets in tqdm(loader, desc="eval", leave=False, dynamic_ncols=True, disable=not progress):
        with autocast or contextlib.nullcontext():
            outputs = model([img.to(device) for img in images])
        for target, output in zip(targets, outputs):
            seen.append(target["image_id"])
            results += to_coco_results(output, target["image_id"], dataset.cat_ids, with_masks)
        if max_images and len(seen) >= max_images:
            break
    metrics = coco_eval(dataset.coco, results, seen, iou_types)
    metrics["images"] = len(seen)
    metrics["detections"] = len(results)
    return metrics


__all__ = ["IOU_TYPES", "STAT_NAMES", "CocoDetectionDataset", "annotation_mask", "coco_eval", "collate", "evaluate_detector",
           "to_coco_results"]
