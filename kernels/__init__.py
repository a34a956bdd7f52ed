"""Compute kernels of vision-mamba, installed as `vision_mamba.kernels`."""
from .orderings import ROUTES, cross_merge, cross_scan
from .selective import BACKENDS, count_flops, selective_scan, set_debug
from .ssd import ssd_scan

__all__ = ["BACKENDS", "ROUTES", "count_flops", "cross_merge", "cross_scan", "selective_scan", "set_debug",
           "ssd_scan"]
