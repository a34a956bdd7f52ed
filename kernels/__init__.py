"""Compute kernels of vision-mamba, installed as `vision_mamba.kernels`."""
from .selective import BACKENDS, selective_scan, set_debug

__all__ = ["BACKENDS", "selective_scan", "set_debug"]
