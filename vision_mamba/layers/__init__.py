"""Blocks shared by the model families, written once."""
from .gated_cnn import GatedCNNMixer
from .mamba_mixer import MambaMixer, init_dt_proj
from .ss2d import SS2D, Linear2d
from .ssd_mixer import SSD2D, GatedRMSNorm, SSDMixer

__all__ = ["GatedCNNMixer", "GatedRMSNorm", "Linear2d", "MambaMixer", "SS2D", "SSD2D", "SSDMixer", "init_dt_proj"]
