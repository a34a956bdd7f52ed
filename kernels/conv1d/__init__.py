"""Depthwise causal conv1d + SiLU (the Mamba mixer's short convolution), reference and Triton."""
from .api import conv1d_silu, conv1d_silu_reference

__all__ = ["conv1d_silu", "conv1d_silu_reference"]
