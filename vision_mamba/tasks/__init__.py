"""Task heads on any backbone: the multi-scale feature interface (features.py) and the torchvision
detectors built on it (detection.py); COCO data / evaluation (coco.py, needs the [det] extra) and the
detection training loop (det_engine.py) are imported where used."""
from .features import PYRAMID_STRIDES, FeatureBackbone, SimpleFeaturePyramid, create_feature_backbone

__all__ = ["PYRAMID_STRIDES", "FeatureBackbone", "SimpleFeaturePyramid", "create_feature_backbone"]
