"""What every family's checkpoint_filter_fn does first: find the weights in a training checkpoint."""
from __future__ import annotations

from typing import Any


def unwrap_state_dict(checkpoint: dict[str, Any], use_ema: bool = False) -> dict[str, Any]:
    """The weights of a release or training file: 'model' (the weights the official evaluations
    report), else 'state_dict', else 'model_ema' — 'model_ema' first when use_ema — else the dict
    itself; DistributedDataParallel's 'module.' prefixes stripped.

    timm's file loader (create_model(pretrained=True, pretrained_cfg_overlay=dict(file=...))) has
    already picked 'model_ema' over 'model' before a filter sees the dict; to load 'model' from a
    file holding both, pass pretrained_cfg_overlay=dict(state_dict=torch.load(path, weights_only=True)).
    """
    keys = (("model_ema",) if use_ema else ()) + ("model", "state_dict", "model_ema")
    for key in keys:
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in checkpoint.items()}
