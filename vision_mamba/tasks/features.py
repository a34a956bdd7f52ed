"""One feature interface for every backbone: a list of NCHW maps at declared strides.

`create_feature_backbone(name)` takes any timm model name (ours: vim_*, vmamba_*, their twins; timm's:
mambaout_*, convnext_*, swin_*, resnet*, ...) and returns a `FeatureBackbone` whose forward gives one
NCHW map per selected level, with `out_channels` and `strides` read from the model's `feature_info`
(what the model declares), never inferred from a trial forward.

Two kinds of backbone, told apart by that declared `feature_info`:

* hierarchical (the levels have different reductions: VMamba, MambaOut, ConvNeXt, Swin, ResNet):
  timm's own `features_only=True` wrapper; `out_indices` are the model's feature levels (timm's
  numbering), by default the levels at strides 4, 8, 16 and 32.  Models whose wrapper emits NHWC
  (Swin, MambaOut) are permuted to NCHW.
* plain (every level has one reduction: Vim, its twin, timm's ViTs): a ViTDet-style simple feature
  pyramid (Li et al. 2022) over one block's patch tokens laid out on their grid (class token removed):
  transposed convolutions up, identity, max-pooling down.  `out_indices` pick among the pyramid levels
  at strides 4, 8, 16, 32 (0..3), all four by default.  `pyramid_blocks` chooses the block: the last
  one (ViTDet), any other, or one block per level (the BEiT / official Vim segmentation layout).
"""
from __future__ import annotations

import difflib
import math
from typing import Optional, Sequence, Union

import timm
import torch
from timm.layers import Format, LayerNorm2d
from timm.models._features import FeatureGetterNet  # not re-exported by timm.models
from torch import nn

from .. import models as _zoo  # noqa: F401  (registers our models with timm)

PYRAMID_STRIDES = (4, 8, 16, 32)


def _check_model_name(name: str) -> None:
    if not isinstance(name, str) or not timm.is_model(name):
        close = difflib.get_close_matches(str(name), timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean one of {close}?" if close else \
            " (see vision_mamba.list_models() for ours, timm.list_models() for all)"
        raise ValueError(f"create_feature_backbone: name={name!r} is not a registered timm model{hint}")


def _declared_feature_info(name: str, kwargs: dict) -> list[dict]:
    """The model's feature_info, read from a copy built on the meta device (no memory, no weights)."""
    try:
        with torch.device("meta"):
            probe = timm.create_model(name, pretrained=False, **kwargs)
    except TypeError as e:  # an unknown keyword argument is the caller's mistake: say so
        raise ValueError(f"create_feature_backbone: {name!r} does not accept these arguments "
                         f"{sorted(kwargs)} ({e})") from e
    info = getattr(probe, "feature_info", None)
    if not info or not all(isinstance(f, dict) and "num_chs" in f and "reduction" in f for f in info):
        raise ValueError(f"create_feature_backbone: {name!r} declares no feature_info "
                         f"(num_chs / reduction per level), so its feature maps are unknown")
    return [dict(f) for f in info]


def _check_indices(out_indices, n: int, what: str) -> list[int]:
    """out_indices as a list of distinct, increasing, non-negative level indices below n."""
    if isinstance(out_indices, int) or not isinstance(out_indices, Sequence) or not out_indices \
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in out_indices):
        raise ValueError(f"create_feature_backbone: out_indices={out_indices!r}, expected a non-empty "
                         f"sequence of ints indexing the {n} {what}")
    bad = [i for i in out_indices if not -n <= i < n]
    if bad:
        raise ValueError(f"create_feature_backbone: out_indices={list(out_indices)} has {bad} out of range "
                         f"for the {n} {what} (valid: 0..{n - 1} or -{n}..-1)")
    norm = [i % n for i in out_indices]
    if any(b <= a for a, b in zip(norm, norm[1:])):
        raise ValueError(f"create_feature_backbone: out_indices={list(out_indices)} must be distinct and "
                         f"increasing (fine to coarse), got levels {norm}")
    return norm


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's simple pyramid: maps of one stride -> maps at `strides`.

    A level `s` times finer than the input gets log2(s) 2x2 stride-2 transposed convolutions, each
    halving the channels (LayerNorm2d + GELU between them, as ViTDet); the same stride is the identity;
    a coarser one is a max-pool.  `inputs` maps each level to the input map it reads (all 0 for one
    block)."""

    def __init__(self, in_channels: int, in_stride: int, strides: Sequence[int], inputs: Sequence[int]):
        super().__init__()
        self.inputs = list(inputs)
        self.levels = nn.ModuleList()
        self.out_channels: list[int] = []
        for stride in strides:
            ratio = in_stride / stride
            steps = round(math.log2(ratio))
            if 2.0 ** steps != ratio:
                raise ValueError(f"SimpleFeaturePyramid: stride {stride} is not a power-of-two multiple or "
                                 f"fraction of the backbone's stride {in_stride}")
            layers: list[nn.Module] = []
            channels = in_channels
            for k in range(steps):
                if channels < 2:
                    raise ValueError(f"SimpleFeaturePyramid: {in_channels} channels cannot be halved "
                                     f"{steps} times for stride {stride}")
                if k:
                    layers += [LayerNorm2d(channels), nn.GELU()]
                layers.append(nn.ConvTranspose2d(channels, channels // 2, kernel_size=2, stride=2))
                channels //= 2
            if steps < 0:
                layers.append(nn.MaxPool2d(kernel_size=2 ** -steps, stride=2 ** -steps))
            self.levels.append(nn.Sequential(*layers))  # empty Sequential: the identity
            self.out_channels.append(channels)

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [level(maps[i]) for level, i in zip(self.levels, self.inputs)]


class FeatureBackbone(nn.Module):
    """forward(x: (B, C, H, W)) -> [ (B, out_channels[i], H / strides[i], W / strides[i]) ... ].

    Attributes: out_channels, strides, out_indices (as resolved), name, kind ('hierarchical' or
    'plain'), body (timm's feature wrapper) and pyramid (plain backbones only).  H and W should be
    multiples of the largest stride (torchvision's detectors pad the batch to a multiple of 32)."""

    def __init__(self, name: str, kind: str, body: nn.Module, out_channels: Sequence[int],
                 strides: Sequence[int], out_indices: Sequence[int], nhwc: bool = False,
                 pyramid: Optional[SimpleFeaturePyramid] = None):
        super().__init__()
        self.name, self.kind = name, kind
        self.body = body
        self.pyramid = pyramid
        self.out_channels = list(out_channels)
        self.strides = list(strides)
        self.out_indices = list(out_indices)
        self.nhwc = nhwc
        self.pretrained_cfg = dict(getattr(body, "pretrained_cfg", None)
                                   or getattr(getattr(body, "model", None), "pretrained_cfg", None) or {})

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = list(self.body(x))
        if self.nhwc:
            maps = [m.permute(0, 3, 1, 2).contiguous() for m in maps]
        return self.pyramid(maps) if self.pyramid is not None else maps

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        target = self.body if hasattr(self.body, "set_grad_checkpointing") else getattr(self.body, "model", None)
        if target is None or not hasattr(target, "set_grad_checkpointing"):
            raise NotImplementedError(f"{self.name}: no gradient checkpointing support")
        target.set_grad_checkpointing(enable)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, kind={self.kind}, out_channels={self.out_channels}, strides={self.strides}"


def create_feature_backbone(name: str, out_indices: Optional[Sequence[int]] = None, pretrained: bool = False,
                            *, pyramid_blocks: Union[int, Sequence[int], None] = None,
                            **kwargs) -> FeatureBackbone:
    """A multi-scale feature extractor from any timm model name (see the module docstring).

    name: a timm model (ours are registered by importing vision_mamba).
    out_indices: hierarchical models: timm's feature levels (default: those at strides 4, 8, 16, 32);
        plain models: pyramid levels 0..3 = strides 4, 8, 16, 32 (default: all four).
    pretrained: load the model's pretrained weights as timm does (ours load a local file with
        pretrained_cfg_overlay=dict(file=path)).
    pyramid_blocks (plain models only): the block whose tokens feed the pyramid (default: the last),
        or one block per selected level.  The blocks' outputs go through the model's final norm, the
        one its pretrained head was trained behind.
    kwargs: passed to timm.create_model (e.g. depth=4, embed_dim=96, drop_path_rate=0.1).
    """
    _check_model_name(name)
    for reserved in ("features_only", "num_classes", "global_pool"):
        if reserved in kwargs:
            raise ValueError(f"create_feature_backbone: {reserved}={kwargs[reserved]!r} is set by the feature "
                             f"interface, not by the caller")
    info = _declared_feature_info(name, kwargs)
    reductions = [int(f["reduction"]) for f in info]
    if len(set(reductions)) == 1:
        return _plain_backbone(name, info, out_indices, pretrained, pyramid_blocks, kwargs)
    if pyramid_blocks is not None:
        raise ValueError(f"create_feature_backbone: pyramid_blocks={pyramid_blocks!r} is for plain (single-stride) "
                         f"backbones; {name!r} is hierarchical (strides {sorted(set(reductions))})")
    return _hierarchical_backbone(name, info, out_indices, pretrained, kwargs)


def _hierarchical_backbone(name, info, out_indices, pretrained, kwargs) -> FeatureBackbone:
    reductions = [int(f["reduction"]) for f in info]
    if out_indices is None:
        # the deepest level at each pyramid stride (a model may declare several levels per stride)
        last_at = {r: i for i, r in enumerate(reductions)}
        missing = [s for s in PYRAMID_STRIDES if s not in last_at]
        if missing:
            raise ValueError(f"create_feature_backbone: {name!r} declares no feature level at strides {missing} "
                             f"(its levels: {reductions}); pass out_indices explicitly")
        levels = [last_at[s] for s in PYRAMID_STRIDES]
    else:
        levels = _check_indices(out_indices, len(info), f"feature levels of {name!r} (strides {reductions})")
    body = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=tuple(levels), **kwargs)
    declared = body.feature_info
    nhwc = Format(getattr(body, "output_fmt", Format.NCHW)) == Format.NHWC
    return FeatureBackbone(name, "hierarchical", body, declared.channels(), declared.reduction(), levels, nhwc)


def _plain_backbone(name, info, out_indices, pretrained, pyramid_blocks, kwargs) -> FeatureBackbone:
    in_stride, depth = int(info[0]["reduction"]), len(info)
    levels = list(range(len(PYRAMID_STRIDES))) if out_indices is None else \
        _check_indices(out_indices, len(PYRAMID_STRIDES), f"pyramid levels (strides {list(PYRAMID_STRIDES)})")
    strides = [PYRAMID_STRIDES[i] for i in levels]
    blocks = [-1] if pyramid_blocks is None else \
        [pyramid_blocks] if isinstance(pyramid_blocks, int) and not isinstance(pyramid_blocks, bool) else pyramid_blocks
    if not isinstance(blocks, Sequence) or not all(isinstance(b, int) and not isinstance(b, bool) for b in blocks) \
            or len(blocks) not in (1, len(levels)) or any(not -depth <= b < depth for b in blocks):
        raise ValueError(f"create_feature_backbone: pyramid_blocks={pyramid_blocks!r}, expected one block index "
                         f"or one per selected level ({len(levels)}), each in -{depth}..{depth - 1} "
                         f"({name!r} has {depth} blocks)")
    blocks = [b % depth for b in blocks]
    unique = sorted(set(blocks))
    model = timm.create_model(name, pretrained=pretrained, **kwargs)
    if not hasattr(model, "forward_intermediates"):
        raise ValueError(f"create_feature_backbone: {name!r} is a plain backbone without forward_intermediates; "
                         f"its block outputs cannot be read")
    # timm's getter runs the model's forward_intermediates up to the deepest block needed (later ones
    # are pruned) and returns NCHW maps of the patch tokens, class / prefix tokens dropped
    body = FeatureGetterNet(model, out_indices=unique, norm=True, output_fmt="NCHW")
    in_channels = body.feature_info.channels()
    if len(set(in_channels)) != 1:
        raise ValueError(f"create_feature_backbone: {name!r} blocks {unique} have different widths {in_channels}")
    inputs = [unique.index(b) for b in blocks] * (len(levels) if len(blocks) == 1 else 1)
    pyramid = SimpleFeaturePyramid(in_channels[0], in_stride, strides, inputs)
    return FeatureBackbone(name, "plain", body, pyramid.out_channels, strides, levels, pyramid=pyramid)


__all__ = ["PYRAMID_STRIDES", "FeatureBackbone", "SimpleFeaturePyramid", "create_feature_backbone"]
