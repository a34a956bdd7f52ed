"""Blocks shared by the model families, written once."""
from .gated_cnn import GatedCNNMixer
from .mamba_mixer import MambaMixer, init_dt_proj

__all__ = ["GatedCNNMixer", "MambaMixer", "init_dt_proj"]
