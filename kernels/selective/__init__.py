from .api import BACKENDS, TRITON_STATE_SIZES, count_flops, prefers_token_major, selective_scan, set_debug
from .reference import selective_scan_reference
from .torch_chunked import selective_scan_torch

__all__ = ["BACKENDS", "TRITON_STATE_SIZES", "count_flops", "prefers_token_major", "selective_scan",
           "selective_scan_reference", "selective_scan_torch", "set_debug"]
