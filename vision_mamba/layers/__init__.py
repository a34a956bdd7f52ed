"""Blocks shared by the model families, written once."""
from .gated_cnn import GatedCNNMixer
from .mamba_mixer import MambaMixer, init_dt_proj
from .ss2d import SS2D, Linear2d

__all__ = ["GatedCNNMixer", "Linear2d", "MambaMixer", "SS2D", "init_dt_proj"]
