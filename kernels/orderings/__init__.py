"""Scan orderings shared by the SSM backbones: a feature map as K sequences (`cross_scan`) and back (`cross_merge`)."""
from .api import BACKENDS, ORDERINGS, ROUTES, cross_merge, cross_scan
from .reference import cross_merge_reference, cross_scan_reference

__all__ = ["BACKENDS", "ORDERINGS", "ROUTES", "cross_merge", "cross_merge_reference", "cross_scan",
           "cross_scan_reference"]
