"""mmsegmentation plug-in: every backbone of the zoo (and any timm model) as an mmseg backbone.

Importing this module registers, in mmseg's registries (so configs can name them, and
"VisionMambaBackbone is not in the mmseg::model registry" cannot happen once it is imported):

* MODELS: `VisionMambaBackbone` -- `vision_mamba.tasks.features.create_feature_backbone` as an mmseg
  backbone: a tuple of NCHW maps, by default at strides 4, 8, 16, 32 (a ViTDet-style simple pyramid
  for the plain Vim and its twin).
* OPTIM_WRAPPER_CONSTRUCTORS: `TimmLayerDecayOptimWrapperConstructor` -- BEiT-style layer-wise
  learning-rate decay (the official Vim segmentation recipe) over the layers the backbone's timm model
  declares through its `group_matcher`.  Registered in mmengine's root registry, which mmseg's
  registry falls back to: the Runner (default scope "mmseg") and a bare `mmengine.optim.build_optim_wrapper`
  (no scope) both find it.

A config loads it with

    custom_imports = dict(imports=["vision_mamba.integrations.mmseg"], allow_failed_imports=False)

Needs the [mmseg] extra and a full mmcv 2.1 with its compiled ops (DEVELOPERS.md says how CI builds it).
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import MODELS
from timm.models import group_parameters
from timm.models._manipulate import MATCH_PREV_GROUP
from torch import nn

from vision_mamba.tasks.features import create_feature_backbone

__all__ = ["TimmLayerDecayOptimWrapperConstructor", "VisionMambaBackbone", "layered_trunk", "trunk_layers"]


@MODELS.register_module()
class VisionMambaBackbone(BaseModule):
    """Any timm model name as an mmseg backbone: forward(x) -> tuple of NCHW feature maps.

    Args:
        name: a timm model: ours (`vision_mamba.list_models()`: vim_*, vmamba_*, their *_gcnn* twins)
            or timm's own (e.g. mambaout_tiny).
        out_indices: feature levels, as `create_feature_backbone` reads them (default: strides 4, 8, 16, 32).
        pretrained: False; or the path of a local checkpoint (.safetensors, or a torch file read with
            weights_only=True), loaded by timm through the model's checkpoint filter -- the official
            releases' state dicts included, the position embedding resampled to `img_size`; or True for
            timm's own pretrained source of the model.  mmseg's `model.pretrained=path` lands here.
        init_cfg: mmengine's, except `Pretrained` (mmengine would load by its own key rules, without the
            model's checkpoint filter): use `pretrained`.
        **model_kwargs: passed to `create_feature_backbone` and timm.create_model (img_size, depth,
            embed_dim, drop_path_rate, pyramid_blocks, ...).

    Attributes: out_channels and strides of the maps (what the decode head's in_channels must be).
    """

    def __init__(self, name: str, out_indices: Optional[Sequence[int]] = None,
                 pretrained: Union[bool, str, None] = False, init_cfg: Union[dict, List[dict], None] = None,
                 **model_kwargs):
        for cfg in init_cfg if isinstance(init_cfg, list) else [init_cfg]:
            if isinstance(cfg, dict) and cfg.get("type") == "Pretrained":
                raise ValueError(f"VisionMambaBackbone: init_cfg={init_cfg!r} -- load weights with "
                                 f"pretrained=<path> instead (the model's checkpoint filter converts "
                                 f"official releases and resamples the position embedding)")
        super().__init__(init_cfg)
        if isinstance(pretrained, (str, os.PathLike)):
            path = os.fspath(pretrained)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"VisionMambaBackbone: pretrained={path!r} is not a file")
            if "pretrained_cfg_overlay" in model_kwargs:
                raise ValueError("VisionMambaBackbone: give either pretrained=<path> or pretrained_cfg_overlay, "
                                 "not both")
            model_kwargs["pretrained_cfg_overlay"] = dict(file=path)
            pretrained = True
        elif pretrained is None:
            pretrained = False
        elif not isinstance(pretrained, bool):
            raise ValueError(f"VisionMambaBackbone: pretrained={pretrained!r}, expected False, True or the path "
                             f"of a checkpoint file")
        self.body = create_feature_backbone(name, out_indices=out_indices, pretrained=pretrained, **model_kwargs)
        self.out_channels: List[int] = list(self.body.out_channels)
        self.strides: List[int] = list(self.body.strides)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.body(x))


def layered_trunk(model: nn.Module) -> Tuple[str, nn.Module]:
    """(name, module) of the outermost module inside `model.backbone` that declares its layers with
    timm's `group_matcher` (a Vim / VMamba / timm model), its name relative to `model`."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ValueError(f"layered_trunk: the model ({type(model).__name__}) has no .backbone module")
    for name, module in backbone.named_modules():
        if callable(getattr(module, "group_matcher", None)):
            return f"backbone.{name}" if name else "backbone", module
    raise ValueError(f"layered_trunk: no module of the backbone ({type(backbone).__name__}) declares its layers "
                     f"with group_matcher(), so layer-wise lr decay has no layers to decay over")


def trunk_layers(trunk: nn.Module) -> dict:
    """Parameter name -> layer id, BEiT's numbering: the stem 0, block i i + 1, and one layer above the
    last block for what follows it (the final norm; the heads share it at lr x 1).

    Read from the model's timm `group_matcher`.  timm's own layer decay folds the final norm into the
    last block (its MATCH_PREV_GROUP ordinal 99999), so the last block would train at the full lr;
    here that entry gets a layer of its own, as mmseg's BEiT / official Vim recipe counts it.
    """
    matcher = trunk.group_matcher(coarse=False)
    own_layer = {key: [(regex, (99998,) if ordinal == MATCH_PREV_GROUP else ordinal) for regex, ordinal in rules]
                 if isinstance(rules, (list, tuple)) else rules for key, rules in matcher.items()}
    return group_parameters(trunk, own_layer, reverse=True)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TimmLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise learning-rate decay (BEiT; the official Vim segmentation recipe) for mmengine.

        optim_wrapper = dict(type="OptimWrapper", constructor="TimmLayerDecayOptimWrapperConstructor",
                             optimizer=dict(type="AdamW", lr=1e-4, weight_decay=0.05),
                             paramwise_cfg=dict(layer_decay_rate=0.95))

    The backbone's timm model (`layered_trunk`) is split into layers from its own `group_matcher`
    (`trunk_layers`): for Vim the stem (patch embedding, position embedding, class token) is layer 0,
    block i is layer i + 1, the final norm the last layer L = depth + 1.  Layer l trains at lr * rate ** (L - l) -- the numbers mmseg's BEiT constructor gives
    -- and everything outside the trunk (the feature pyramid, the decode and auxiliary heads) at lr.
    No weight decay on 1-D parameters (norms, biases) nor on the trunk's `no_weight_decay()` names
    (position embedding, class token, A_log, D).

    mmseg's own LearningRateDecayOptimizerConstructor only knows its BEiT / MAE / ConvNeXt parameter
    names; this one reads the layers from the model.
    """

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = "",
                   is_dcn_module: Optional[Union[int, float]] = None) -> None:
        unknown = sorted(set(self.paramwise_cfg) - {"layer_decay_rate"})
        if unknown:
            raise ValueError(f"TimmLayerDecayOptimWrapperConstructor: paramwise_cfg keys {unknown} are not "
                             f"supported (only layer_decay_rate)")
        rate = self.paramwise_cfg.get("layer_decay_rate")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(f"TimmLayerDecayOptimWrapperConstructor: paramwise_cfg.layer_decay_rate={rate!r}, "
                             f"expected a number in (0, 1]")
        if self.base_lr is None or self.base_wd is None:
            raise ValueError(f"TimmLayerDecayOptimWrapperConstructor: the optimizer needs lr and weight_decay, "
                             f"got lr={self.base_lr!r}, weight_decay={self.base_wd!r}")
        trunk_name, trunk = layered_trunk(module)
        no_decay_names = set(trunk.no_weight_decay()) if callable(getattr(trunk, "no_weight_decay", None)) else set()
        layer_of = trunk_layers(trunk)
        top = max(layer_of.values())
        groups: dict = {}
        for name, p in trunk.named_parameters():
            if not p.requires_grad:
                continue
            no_decay = p.ndim <= 1 or name in no_decay_names
            scale = rate ** (top - layer_of[name])
            groups.setdefault((scale, no_decay), []).append(p)
        in_trunk = set()
        for (scale, no_decay), group in groups.items():
            params.append(dict(params=group, lr=self.base_lr * scale, weight_decay=0.0 if no_decay else self.base_wd))
            in_trunk.update(id(p) for p in group)
        rest = [p for p in module.parameters() if p.requires_grad and id(p) not in in_trunk]
        for decays in (True, False):
            chosen = [p for p in rest if (p.ndim > 1) == decays]
            if chosen:
                params.append(dict(params=chosen, lr=self.base_lr, weight_decay=self.base_wd if decays else 0.0))
        scales = sorted({scale for scale, _ in groups})
        print_log(f"layer-wise lr decay {rate} over {top + 1} layers of {trunk_name} "
                  f"({type(trunk).__name__}): lr x {scales[0]:.3g} .. x {scales[-1]:.3g}; "
                  f"{len(rest)} other parameter tensors at lr", logger="current")
