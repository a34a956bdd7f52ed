"""The model zoo: importing this registers every family with timm."""
from __future__ import annotations

import timm

from .umamba import UMambaBot, UMambaEnc, umamba_bot, umamba_enc  # not a timm model: segmentation
from .vim import VisionMamba
from .vim import checkpoint_filter_fn as vim_checkpoint_filter_fn
from .vmamba import VSSM
from .vmamba import checkpoint_filter_fn as vmamba_checkpoint_filter_fn

# family -> the timm module names its models are registered under (timm's own MambaOut included)
FAMILIES = {"Vim": ("vim",), "VMamba": ("vmamba",), "MambaOut (timm)": ("mambaout",)}


def list_models(family: str | None = None) -> list[tuple[str, str]]:
    """(model name, family) for every model of the zoo, or of one family; twins are named *_gcnn*."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"list_models: family={family!r}, expected one of {sorted(FAMILIES)}")
    families = [family] if family else list(FAMILIES)
    return [(name, fam) for fam in families for module in FAMILIES[fam]
            for name in timm.list_models(module=module) if not name.startswith("test_")]


__all__ = ["FAMILIES", "UMambaBot", "UMambaEnc", "VSSM", "VisionMamba", "list_models", "umamba_bot",
           "umamba_enc", "vim_checkpoint_filter_fn", "vmamba_checkpoint_filter_fn"]
