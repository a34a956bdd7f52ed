"""VMamba v2 (Liu et al., "VMamba: Visual State Space Model", arXiv:2401.10166) as timm models.

The v2 recipe of the official release (MzeroMiko/VMamba, classification/models/vmamba.py, VSSM with
forward_type "v05_noz", norm "ln2d", patch embed v2, downsample v3), channel-first throughout.
Module names and parameter shapes are the official ones, so the released checkpoints load as they
are (see `checkpoint_filter_fn`) and give the official outputs:

    patch_embed.{0,2,5,7}.*                     conv 3x3/2, LN2d, (GELU), conv 3x3/2, LN2d
    layers.{i}.blocks.{j}.{norm,op,norm2,mlp}.* one VSS block: x + op(norm(x)), x + mlp(norm2(x))
    layers.{i}.downsample.{1,3}.*               conv 3x3/2, LN2d (after stage i's blocks; none after the last)
    classifier.{norm,head}.*                    LN2d on the map, average pool, linear

The Sequential indices (0, 2, 5, 7 and 1, 3) are the official ones: the official module lists keep
identity/permute slots there for their channel-last variants, which channel-first never needs.

mixer="gated_cnn" gives the SSM-free twin: the same network with MambaOut's gated CNN in place of SS2D.
mixer="ssd" gives the official Mamba-2 configs (vmamba_*_m2: forward type "m0_noz", SSD2D in place of SS2D).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, LayerNorm2d, SelectAdaptivePool2d, trunc_normal_
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices

from vision_mamba.layers.gated_cnn import GatedCNNMixer
from vision_mamba.layers.ss2d import LN_EPS, SS2D, Linear2d
from vision_mamba.layers.ssd_mixer import SSD2D

from ._checkpoint import unwrap_state_dict
from ._inputs import check_image, positive_int

__all__ = ["VSSM", "VSSBlock", "checkpoint_filter_fn"]

MIXERS = ("ss2d", "ssd", "gated_cnn")


def _norm(dim: int) -> nn.Module:
    return LayerNorm2d(dim, eps=LN_EPS)


class Mlp(nn.Module):
    """Channel-first MLP: 1x1 linear -> act -> 1x1 linear, weights in nn.Linear's (out, in) shape."""

    def __init__(self, dim: int, hidden: int, act_layer: type[nn.Module] = nn.GELU, drop: float = 0.0):
        super().__init__()
        self.fc1 = Linear2d(dim, hidden)
        self.act = act_layer()
        self.fc2 = Linear2d(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class VSSBlock(nn.Module):
    """(B, C, H, W) -> (B, C, H, W): x + drop_path(op(norm(x))); x + drop_path(mlp(norm2(x))).

    op is SS2D (mixer "ss2d", built from ssm_kwargs), its Mamba-2 form SSD2D (mixer "ssd", same kwargs)
    or the gated CNN (mixer "gated_cnn", which runs channel-last, so the block permutes around it).
    """

    def __init__(self, dim: int, mixer: str = "ss2d", drop_path: float = 0.0, mlp_ratio: float = 4.0,
                 mlp_drop: float = 0.0, ssm_kwargs: Optional[dict] = None):
        super().__init__()
        if mixer not in MIXERS:
            raise ValueError(f"VSSBlock: mixer={mixer!r}, expected one of {MIXERS}")
        self.op_channels_last = mixer == "gated_cnn"
        self.norm = _norm(dim)
        self.op = GatedCNNMixer(dim) if self.op_channels_last else (
            SSD2D if mixer == "ssd" else SS2D)(dim, **(ssm_kwargs or {}))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = _norm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=mlp_drop)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        if self.op_channels_last:
            return self.op(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.op(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.mix(self.norm(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _downsample(dim: int, out_dim: int) -> nn.Module:
    """Downsample "v3": conv 3x3 stride 2, then LN2d (official indices 1 and 3)."""
    return nn.Sequential(OrderedDict([
        ("1", nn.Conv2d(dim, out_dim, kernel_size=3, stride=2, padding=1)),
        ("3", _norm(out_dim)),
    ]))


class VSSLayer(nn.Module):
    """One stage: `blocks` at this stage's width, then `downsample` to the next (identity after the last)."""

    def __init__(self, blocks: List[nn.Module], downsample: nn.Module):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.downsample = downsample
        self.grad_checkpointing = False

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.forward_blocks(x))


class Classifier(nn.Module):
    """LN2d on the final map, global pool, dropout, linear (official keys: norm, head)."""

    def __init__(self, dim: int, num_classes: int, pool_type: str = "avg", drop_rate: float = 0.0):
        super().__init__()
        self.norm = _norm(dim)
        self.global_pool = SelectAdaptivePool2d(pool_type=pool_type, flatten=bool(pool_type))
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int, pool_type: Optional[str] = None) -> None:
        if pool_type is not None:
            self.global_pool = SelectAdaptivePool2d(pool_type=pool_type, flatten=bool(pool_type))
        dim = self.norm.normalized_shape[0] if isinstance(self.norm, nn.LayerNorm) else None
        if num_classes > 0 and dim is None:
            raise ValueError("Classifier.reset: the norm was pruned, the head width is unknown")
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.global_pool(self.norm(x)))
        return x if pre_logits else self.head(x)


class VSSM(nn.Module):
    """VMamba v2 backbone + classifier.

    depths: blocks per stage; dims: stage widths (an int d means d, 2d, 4d, 8d).
    mixer: "ss2d" (VMamba), "ssd" (VMamba's Mamba-2 form) or "gated_cnn" (the SSM-free twin).
    ssm_*: SS2D settings (d_state, ratio, dt_rank, conv kernel, conv bias); ordering: scan ordering;
    scan_backend: the selective_scan backend ("auto", "torch", "triton", "reference");
    cross_scan_backend: the cross_scan / cross_merge backend ("auto", "reference", "triton").
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 1000, global_pool: str = "avg",
                 depths: Tuple[int, ...] = (2, 2, 9, 2), dims: Union[int, Tuple[int, ...]] = 96,
                 mixer: str = "ss2d", ssm_d_state: int = 1, ssm_ratio: float = 2.0,
                 ssm_dt_rank: Union[int, str] = "auto", ssm_conv: int = 3, ssm_conv_bias: bool = False,
                 ordering: str = "cross2d", scan_backend: str = "auto", cross_scan_backend: str = "auto",
                 mlp_ratio: float = 4.0,
                 drop_rate: float = 0.0, mlp_drop_rate: float = 0.0, drop_path_rate: float = 0.1):
        super().__init__()
        positive_int("VSSM", "in_chans", in_chans)
        positive_int("VSSM", "num_classes", num_classes, minimum=0)
        for i, depth in enumerate(depths):
            positive_int("VSSM", f"depths[{i}]", depth)
        num_stages = len(depths)
        if isinstance(dims, int):
            dims = tuple(dims * 2 ** i for i in range(num_stages))
        if len(dims) != num_stages:
            raise ValueError(f"VSSM: {len(dims)} dims for {num_stages} stages")
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = dims[-1]
        self.drop_rate = drop_rate
        ssm_kwargs = dict(d_state=ssm_d_state, ssm_ratio=ssm_ratio, dt_rank=ssm_dt_rank, d_conv=ssm_conv,
                          conv_bias=ssm_conv_bias, ordering=ordering, scan_backend=scan_backend,
                          cross_scan_backend=cross_scan_backend)

        # patch embed "v2": two conv 3x3 stride 2 with LN2d, GELU between (official indices 0, 2, 4, 5, 7)
        self.patch_embed = nn.Sequential(OrderedDict([
            ("0", nn.Conv2d(in_chans, dims[0] // 2, kernel_size=3, stride=2, padding=1)),
            ("2", _norm(dims[0] // 2)),
            ("4", nn.GELU()),
            ("5", nn.Conv2d(dims[0] // 2, dims[0], kernel_size=3, stride=2, padding=1)),
            ("7", _norm(dims[0])),
        ]))

        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        self.feature_info = []
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            blocks = [VSSBlock(dims[i], mixer, dpr[first + j], mlp_ratio, mlp_drop_rate, ssm_kwargs)
                      for j in range(depth)]
            downsample = _downsample(dims[i], dims[i + 1]) if i < num_stages - 1 else nn.Identity()
            self.layers.append(VSSLayer(blocks, downsample))
            self.feature_info.append(dict(num_chs=dims[i], reduction=4 * 2 ** i, module=f"layers.{i}.blocks"))

        self.classifier = Classifier(dims[-1], num_classes, global_pool, drop_rate)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        # as the official VSSM: every Linear (Linear2d too) truncated normal; LayerNorms at (1, 0);
        # convs and the SSM parameters keep their own init
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {name for name, p in self.named_parameters() if getattr(p, "_no_weight_decay", False)}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(
            stem=r"^patch_embed",
            blocks=r"^layers\.(\d+)" if coarse else [
                (r"^layers\.(\d+)\.downsample", (0,)),
                (r"^layers\.(\d+)\.blocks\.(\d+)", None),
                (r"^classifier\.norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        for layer in self.layers:
            layer.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        positive_int("reset_classifier", "num_classes", num_classes, minimum=0)
        self.num_classes = num_classes
        self.classifier.reset(num_classes, global_pool)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stage outputs (after each stage's blocks, before its downsample), as the official backbone.

        indices: the last n stages if int, all if None, those listed otherwise. norm: apply the
        classifier's norm to the last stage's output. Returns (final map, intermediates) or, with
        intermediates_only, the intermediates alone.
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt={output_fmt!r}, expected 'NCHW' or 'NHWC'")
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        last = len(self.layers) - 1
        layers = self.layers if torch.jit.is_scripting() or not stop_early else self.layers[:max_index + 1]

        intermediates = []
        x = self._embed(x)
        for i, layer in enumerate(layers):
            x = layer.forward_blocks(x)
            if i in take_indices:
                y = self.classifier.norm(x) if norm and i == last else x
                intermediates.append(y.permute(0, 2, 3, 1) if output_fmt == "NHWC" else y)
            x = layer.downsample(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop the stages (and the downsample after the last kept one) that no kept output needs."""
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        self.layers = self.layers[:max_index + 1]
        self.layers[-1].downsample = nn.Identity()
        if max_index < len(self.feature_info) - 1:
            # the features now end at a narrower stage: the final norm and head no longer fit
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
            prune_norm = True
        if prune_norm:
            self.classifier.norm = nn.Identity()
        if prune_head or prune_norm:
            self.reset_classifier(0, "")
        return take_indices

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.patch_embed[0].in_channels, 1, "VSSM", like=self.patch_embed[0].weight)
        return self.patch_embed(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> (B, C_last, H/32, W/32), before the classifier's norm."""
        x = self._embed(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(f"VSSM.forward_head: x has shape {tuple(x.shape)}, expected (batch, {self.num_features}, "
                             f"H, W) as forward_features returns")
        return self.classifier(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class _OfficialConfig:
    """Reads the yacs CfgNode that official training checkpoints store under 'config', as an OrderedDict.

    timm reads pretrained files with torch.load(weights_only=True), which refuses unknown classes;
    allowing this stand-in under the name "yacs.config.CfgNode" lets it read those files without yacs
    and without allowing arbitrary code (the weights-only unpickler fills only OrderedDicts).
    """

    def __new__(cls, *args, **kwargs):
        return OrderedDict()


def checkpoint_filter_fn(state_dict: dict, model: VSSM, use_ema: bool = False) -> dict:
    """An official VMamba release file's dict (or a plain state dict) -> this model's state dict.

    Unwraps the training wrapper (`unwrap_state_dict`) and reshapes (out, in, 1, 1) weights saved
    from conv variants onto the (out, in) Linear2d weights. Keys the model lacks raise (nothing is
    dropped silently); keys the checkpoint lacks are left to load_state_dict(strict=True) to report.
    """
    state_dict = unwrap_state_dict(state_dict, use_ema)
    model_state = model.state_dict()
    out, unknown = {}, []
    for k, v in state_dict.items():
        if k not in model_state:
            unknown.append(k)
            continue
        target = model_state[k]
        if v.dim() == 4 and target.dim() == 2 and v.shape[2:] == (1, 1):
            v = v.reshape(target.shape)
        out[k] = v
    if unknown:
        raise KeyError(f"checkpoint_filter_fn: {len(unknown)} checkpoint keys have no place in "
                       f"{type(model).__name__}: {unknown[:8]}{' ...' if len(unknown) > 8 else ''}")
    return out


def _create_vmamba(variant: str, pretrained: bool = False, **kwargs) -> VSSM:
    with torch.serialization.safe_globals([(_OfficialConfig, "yacs.config.CfgNode")]):
        return build_model_with_cfg(
            VSSM, variant, pretrained,
            pretrained_filter_fn=checkpoint_filter_fn,
            feature_cfg=dict(out_indices=(0, 1, 2, 3), feature_cls="getter"),
            **kwargs,
        )


def _cfg(url: str = "", **kwargs) -> dict:
    # evaluation as the official data pipeline: resize to 256/224 of the crop, centre crop, bicubic
    return {
        "url": url, "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bicubic", "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD, "first_conv": "patch_embed.0", "classifier": "classifier.head",
        "license": "mit", "paper_ids": "arXiv:2401.10166", **kwargs,
    }


default_cfgs = generate_default_cfgs({
    "vmamba_tiny_s1l8.in1k": _cfg(),
    "vmamba_tiny_s2l5.in1k": _cfg(),
    "vmamba_small_s2l15.in1k": _cfg(),
    "vmamba_small_s1l20.in1k": _cfg(),
    "vmamba_base_s2l15.in1k": _cfg(),
    "vmamba_base_s1l20.in1k": _cfg(),
    "vmamba_tiny_gcnn": _cfg(),
    "vmamba_small_gcnn": _cfg(),
    "vmamba_base_gcnn": _cfg(),
    "vmamba_tiny_m2": _cfg(),
    "vmamba_small_m2": _cfg(),
    "vmamba_base_m2": _cfg(),
})

# the official configs (classification/configs/vssm/vmambav2{,v}_{tiny,small,base}_224.yaml);
# the twins copy the headline model of each size (T s1l8, S s2l15, B s2l15) minus the SSM
MODEL_ARGS = {
    "vmamba_tiny_s1l8": dict(depths=(2, 2, 8, 2), dims=96, ssm_ratio=1.0, drop_path_rate=0.2),
    "vmamba_tiny_s2l5": dict(depths=(2, 2, 5, 2), dims=96, ssm_ratio=2.0, drop_path_rate=0.2),
    "vmamba_small_s2l15": dict(depths=(2, 2, 15, 2), dims=96, ssm_ratio=2.0, drop_path_rate=0.3),
    "vmamba_small_s1l20": dict(depths=(2, 2, 20, 2), dims=96, ssm_ratio=1.0, drop_path_rate=0.3),
    "vmamba_base_s2l15": dict(depths=(2, 2, 15, 2), dims=128, ssm_ratio=2.0, drop_path_rate=0.6),
    "vmamba_base_s1l20": dict(depths=(2, 2, 20, 2), dims=128, ssm_ratio=1.0, drop_path_rate=0.5),
    "vmamba_tiny_gcnn": dict(depths=(2, 2, 8, 2), dims=96, mixer="gated_cnn", drop_path_rate=0.2),
    "vmamba_small_gcnn": dict(depths=(2, 2, 15, 2), dims=96, mixer="gated_cnn", drop_path_rate=0.3),
    "vmamba_base_gcnn": dict(depths=(2, 2, 15, 2), dims=128, mixer="gated_cnn", drop_path_rate=0.6),
    # Mamba-2 (the official vmamba_{tiny,small,base}_m2 of classification/models/vmamba.py: SS2D
    # forward type "m0_noz", d_state 64, ssm ratio 1, GELU, conv 3 without bias; no released weights)
    "vmamba_tiny_m2": dict(depths=(2, 2, 4, 2), dims=96, mixer="ssd", ssm_d_state=64, ssm_ratio=1.0,
                           drop_path_rate=0.2),
    "vmamba_small_m2": dict(depths=(2, 2, 12, 2), dims=96, mixer="ssd", ssm_d_state=64, ssm_ratio=1.0,
                            drop_path_rate=0.3),
    "vmamba_base_m2": dict(depths=(2, 2, 12, 2), dims=128, mixer="ssd", ssm_d_state=64, ssm_ratio=1.0,
                           drop_path_rate=0.3),
}


def _vmamba(name: str, pretrained: bool, kwargs: dict) -> VSSM:
    return _create_vmamba(name, pretrained=pretrained, **dict(MODEL_ARGS[name], **kwargs))


@register_model
def vmamba_tiny_s1l8(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_tiny_s1l8", pretrained, kwargs)


@register_model
def vmamba_tiny_s2l5(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_tiny_s2l5", pretrained, kwargs)


@register_model
def vmamba_small_s2l15(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_small_s2l15", pretrained, kwargs)


@register_model
def vmamba_small_s1l20(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_small_s1l20", pretrained, kwargs)


@register_model
def vmamba_base_s2l15(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_base_s2l15", pretrained, kwargs)


@register_model
def vmamba_base_s1l20(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_base_s1l20", pretrained, kwargs)


@register_model
def vmamba_tiny_gcnn(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_tiny_gcnn", pretrained, kwargs)


@register_model
def vmamba_small_gcnn(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_small_gcnn", pretrained, kwargs)


@register_model
def vmamba_base_gcnn(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_base_gcnn", pretrained, kwargs)


@register_model
def vmamba_tiny_m2(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_tiny_m2", pretrained, kwargs)


@register_model
def vmamba_small_m2(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_small_m2", pretrained, kwargs)


@register_model
def vmamba_base_m2(pretrained: bool = False, **kwargs) -> VSSM:
    return _vmamba("vmamba_base_m2", pretrained, kwargs)
