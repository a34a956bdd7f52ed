"""torchvision's Faster R-CNN / Mask R-CNN on any backbone of the feature interface.

    backbone (create_feature_backbone) -> torchvision.ops.FeaturePyramidNetwork (+ a max-pooled extra
    level, as torchvision's ResNet-FPN) -> torchvision's RPN and RoI heads

The anchor generator has one anchor size per level, 8x the level's declared stride (torchvision's
ResNet-50-FPN choice: 32 px at stride 4 ... 512 px at stride 64), three aspect ratios; the RoI poolers
read the backbone's levels (not the extra one), as torchvision does.  Data, training and COCO
evaluation: vision_mamba.tasks.coco and vision_mamba.tasks.det_engine (the [det] extra).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional, Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn
from torchvision.models.detection import FasterRCNN, MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FeaturePyramidNetwork, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .features import FeatureBackbone, create_feature_backbone

ARCHS = {"faster_rcnn": FasterRCNN, "mask_rcnn": MaskRCNN}


class FPNBackbone(nn.Module):
    """A FeatureBackbone followed by torchvision's FPN: what GeneralizedRCNN expects (an OrderedDict of
    `out_channels`-wide maps, finest first, names '0', '1', ... and 'pool' for the extra level)."""

    def __init__(self, features: FeatureBackbone, fpn_channels: int = 256):
        super().__init__()
        self.features = features
        self.level_names = [str(i) for i in range(len(features.strides))]
        self.fpn = FeaturePyramidNetwork(features.out_channels, fpn_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = fpn_channels
        self.strides = list(features.strides) + [2 * features.strides[-1]]  # LastLevelMaxPool: stride 2

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return self.fpn(OrderedDict(zip(self.level_names, self.features(x))))


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"build_detector: {name}={value!r}, expected a positive int")
    return value


def build_detector(backbone_name: str, arch: str, num_classes: int, *,
                   out_indices: Optional[Sequence[int]] = None, fpn_channels: int = 256,
                   min_size: int | Sequence[int] = 800, max_size: int = 1333, pretrained: bool = False,
                   freeze_backbone: bool = False, pyramid_blocks=None,
                   anchor_sizes: Optional[Sequence[int]] = None, box_head_dim: int = 1024,
                   mask_head_channels: int = 256, detector_kwargs: Optional[dict[str, Any]] = None,
                   **backbone_kwargs) -> nn.Module:
    """A torchvision FasterRCNN or MaskRCNN on `backbone_name` (any name create_feature_backbone takes).

    num_classes: object classes, background NOT included (torchvision's heads get num_classes + 1;
        labels 1..num_classes are objects, 0 is background).
    out_indices, pyramid_blocks, pretrained, backbone_kwargs: passed to create_feature_backbone.
    fpn_channels: FPN width.  min_size / max_size: torchvision's resizing (the shorter side to
        min_size, or a random choice among several in training; the longer at most max_size).
    freeze_backbone: no gradients to the backbone body (its pyramid, the FPN and the heads train).
    anchor_sizes: one anchor size per level incl. the extra one (default 8 x stride).
    box_head_dim / mask_head_channels: widths of the box MLP head (torchvision: 1024) and of the mask
        head's four convolutions (torchvision: 256); smaller ones make CPU runs cheap.
    detector_kwargs: more FasterRCNN / MaskRCNN arguments (e.g. box_detections_per_img, rpn_*, box_*).
    The image normalisation is the backbone's pretrained_cfg mean / std (ImageNet's otherwise).
    """
    if arch not in ARCHS:
        raise ValueError(f"build_detector: arch={arch!r}, expected one of {sorted(ARCHS)}")
    _check_positive_int(num_classes, "num_classes")
    _check_positive_int(fpn_channels, "fpn_channels")
    _check_positive_int(box_head_dim, "box_head_dim")
    _check_positive_int(mask_head_channels, "mask_head_channels")
    features = create_feature_backbone(backbone_name, out_indices, pretrained, pyramid_blocks=pyramid_blocks,
                                       **backbone_kwargs)
    if freeze_backbone:
        features.body.requires_grad_(False)
    backbone = FPNBackbone(features, fpn_channels)
    n_levels = len(backbone.strides)
    if anchor_sizes is None:
        anchor_sizes = [8 * s for s in backbone.strides]
    if len(anchor_sizes) != n_levels or not all(isinstance(a, (int, float)) and a > 0 for a in anchor_sizes):
        raise ValueError(f"build_detector: anchor_sizes={list(anchor_sizes)}, expected {n_levels} positive sizes "
                         f"(one per level: strides {backbone.strides})")
    anchors = AnchorGenerator(tuple((a,) for a in anchor_sizes), ((0.5, 1.0, 2.0),) * n_levels)
    box_pool = MultiScaleRoIAlign(backbone.level_names, output_size=7, sampling_ratio=2)
    cfg = features.pretrained_cfg
    # heads and predictors built here so their widths follow box_head_dim / mask_head_channels
    # (torchvision would fix them at 1024 / 256); num_classes=None is torchvision's rule then
    kwargs = dict(num_classes=None, min_size=min_size, max_size=max_size,
                  image_mean=list(cfg.get("mean", IMAGENET_DEFAULT_MEAN)),
                  image_std=list(cfg.get("std", IMAGENET_DEFAULT_STD)),
                  rpn_anchor_generator=anchors, box_roi_pool=box_pool,
                  box_head=TwoMLPHead(fpn_channels * 7 * 7, box_head_dim),
                  box_predictor=FastRCNNPredictor(box_head_dim, num_classes + 1))
    if arch == "mask_rcnn":
        kwargs.update(mask_roi_pool=MultiScaleRoIAlign(backbone.level_names, output_size=14, sampling_ratio=2),
                      mask_head=MaskRCNNHeads(fpn_channels, [mask_head_channels] * 4, dilation=1),
                      mask_predictor=MaskRCNNPredictor(mask_head_channels, mask_head_channels, num_classes + 1))
    clashes = sorted(set(detector_kwargs or {}) & set(kwargs))
    if clashes:
        raise ValueError(f"build_detector: detector_kwargs {clashes} are set by build_detector's own arguments")
    model = ARCHS[arch](backbone, **kwargs, **(detector_kwargs or {}))
    model.backbone_name, model.arch, model.num_object_classes = backbone_name, arch, num_classes
    return model


__all__ = ["ARCHS", "FPNBackbone", "build_detector"]
