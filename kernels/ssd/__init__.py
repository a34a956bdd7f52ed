from .api import BACKENDS, TRITON_CHUNK_SIZES, ssd_scan
from .reference import ssd_scan_reference
from .torch_chunked import ssd_scan_torch

__all__ = ["BACKENDS", "TRITON_CHUNK_SIZES", "ssd_scan", "ssd_scan_reference", "ssd_scan_torch"]
