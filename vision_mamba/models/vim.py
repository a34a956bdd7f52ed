"""Vision Mamba (Vim, Zhu et al. 2024, hustvl/Vim) as timm models, and its SSM-free twins.

Architecture and state-dict keys follow the official release (models_mamba.py with bimamba_type
"v2", the "midclstok" checkpoints), so its checkpoints load through `checkpoint_filter_fn` and give
the same outputs:

    patch_embed.proj  conv, kernel 16, stride 16 (or 8 for the *_stride8 variants), no padding
    cls_token         inserted in the MIDDLE of the patch sequence, at index num_patches // 2
    pos_embed         (1, num_patches + 1, C), the class token's entry at that same middle index
    layers.{i}        add -> RMSNorm -> bidirectional Mamba mixer; the residual stream is kept in fp32
    norm_f            final add -> RMSNorm
    head              linear on the class token

Unlike the official model, the position embedding is resampled to the patch grid of any input.
mixer="ssd" gives the Mamba-2 variants (vim_*_ssd_*, ours): the same network with a bidirectional
Mamba-2 mixer (vision_mamba.layers.SSDMixer) in place of bimamba v2.
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, RmsNorm, resample_abs_pos_embed, to_2tuple, trunc_normal_
from timm.layers.weight_init import lecun_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint

from vision_mamba.layers.gated_cnn import GatedCNNMixer
from vision_mamba.layers.mamba_mixer import MambaMixer
from vision_mamba.layers.ssd_mixer import SSDMixer

from ._checkpoint import unwrap_state_dict
from ._inputs import check_image, positive_int

__all__ = ["VisionMamba", "checkpoint_filter_fn"]

Grid = Tuple[int, int]


def class_token_index(num_patches: int, middle: bool = True) -> int:
    """Where the class token sits in the token sequence (Vim: the middle, M // 2)."""
    return num_patches // 2 if middle else 0


def resample_pos_embed(pos_embed: torch.Tensor, old_grid: Grid, new_grid: Grid, middle: bool = True,
                       interpolation: str = "bicubic", antialias: bool = True) -> torch.Tensor:
    """(1, old_h * old_w + 1, C) -> (1, new_h * new_w + 1, C): the patch entries are resampled as a
    2-D grid, the class token's entry moves from the old class index to the new one unchanged."""
    old_n, new_n = old_grid[0] * old_grid[1], new_grid[0] * new_grid[1]
    if pos_embed.shape[1] != old_n + 1:
        raise ValueError(f"resample_pos_embed: pos_embed has shape {tuple(pos_embed.shape)}, expected "
                         f"(1, {old_n + 1}, C) for a {old_grid} grid plus the class token")
    i = class_token_index(old_n, middle)
    cls_pos = pos_embed[:, i:i + 1]
    patches = torch.cat((pos_embed[:, :i], pos_embed[:, i + 1:]), dim=1)
    patches = resample_abs_pos_embed(patches, list(new_grid), list(old_grid), num_prefix_tokens=0,
                                     interpolation=interpolation, antialias=antialias)
    j = class_token_index(new_n, middle)
    return torch.cat((patches[:, :j], cls_pos, patches[:, j:]), dim=1)


class VimPatchEmbed(nn.Module):
    """Image (B, C, H, W) -> patch grid (B, h, w, D) by one conv of kernel `patch_size` and stride
    `stride` without padding (Vim's stride-8 variants overlap their 16 x 16 patches)."""

    def __init__(self, img_size: Union[int, Grid] = 224, patch_size: int = 16, stride: Optional[int] = None,
                 in_chans: int = 3, embed_dim: int = 192):
        super().__init__()
        self.patch_size = to_2tuple(patch_size)
        self.stride = to_2tuple(stride or patch_size)
        self.img_size = to_2tuple(img_size)
        self.grid_size = self.feat_size(self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.stride)

    def feat_size(self, img_size: Grid) -> Grid:
        return tuple((s - p) // t + 1 for s, p, t in zip(img_size, self.patch_size, self.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.proj.in_channels, max(self.patch_size), "VisionMamba", like=self.proj.weight,
                    patch_grid=(self.patch_size, self.stride))
        return self.proj(x).permute(0, 2, 3, 1)


class PatchGridGatedCNN(GatedCNNMixer):
    """GatedCNNMixer on a token sequence: the patch tokens are mixed as their (h, w) grid, the class
    token is passed through unchanged (it has no place on the grid)."""

    def forward(self, x: torch.Tensor, grid_size: Grid, middle: bool = True) -> torch.Tensor:
        batch, _, dim = x.shape
        i = class_token_index(grid_size[0] * grid_size[1], middle)
        patches = torch.cat((x[:, :i], x[:, i + 1:]), dim=1).reshape(batch, *grid_size, dim)
        patches = super().forward(patches).reshape(batch, -1, dim)
        return torch.cat((patches[:, :i], x[:, i:i + 1], patches[:, i:]), dim=1)


class VimBlock(nn.Module):
    """Vim's add -> norm -> mixer block.  It takes the previous block's mixer output `hidden` and
    the residual stream, returns its own mixer output and the updated stream:

        residual = hidden if residual is None else residual + drop_path(hidden)
        hidden = mixer(norm(residual))

    (the official ordering, which lets mamba_ssm fuse the add with the norm).  The stream is kept in
    fp32 when residual_in_fp32.
    """

    def __init__(self, dim: int, mixer: nn.Module, norm_eps: float = 1e-5, drop_path: float = 0.,
                 residual_in_fp32: bool = True, middle_cls_token: bool = True):
        super().__init__()
        self.mixer = mixer
        self.norm = RmsNorm(dim, eps=norm_eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.residual_in_fp32 = residual_in_fp32
        self.middle_cls_token = middle_cls_token
        self.mixes_grid = isinstance(mixer, PatchGridGatedCNN)

    def forward(self, hidden: torch.Tensor, residual: Optional[torch.Tensor],
                grid_size: Grid) -> Tuple[torch.Tensor, torch.Tensor]:
        residual = hidden if residual is None else residual + self.drop_path(hidden)
        if self.residual_in_fp32:
            residual = residual.float()
        x = self.norm(residual.to(self.norm.weight.dtype))
        hidden = self.mixer(x, grid_size, self.middle_cls_token) if self.mixes_grid else self.mixer(x)
        return hidden, residual


class VisionMamba(nn.Module):
    """Vision Mamba (Vim) classifier; `mixer="gated_cnn"` builds its SSM-free twin.

    Args:
        img_size: the input size the stored pos_embed is laid out for (any size runs: the embedding
            is resampled to the input's patch grid at forward time).
        patch_size, stride: patch conv kernel and stride (stride defaults to patch_size).
        in_chans, num_classes: input channels, classes (0: no head).
        global_pool: 'token' (the middle class token: the released models), 'avg' (mean of the patch
            tokens) or '' (no pooling: forward_head returns all tokens).
        embed_dim, depth: width and number of blocks.
        d_state, expand, d_conv: Mamba mixer sizes (N, d_inner / dim, conv taps).
        bimamba_type: "v2" (bidirectional, the released models) or "none" (forward scan only).
        if_divide_out: average the two scan directions (the released models: True).
        mixer: 'mamba', 'ssd' (Mamba-2, `SSDMixer`) or 'gated_cnn'.  mixer_cfg: extra keyword arguments
            of the mixer (e.g. dt_min for Mamba, headdim / chunk_size for SSD, expansion_ratio /
            kernel_size for the gated CNN).
        use_middle_cls_token: class token in the middle of the sequence (True) or at its start.
        norm_eps, residual_in_fp32: RMSNorm eps, fp32 residual stream.
        drop_rate: dropout after the position embedding.  drop_path_rate: stochastic depth; like the
            official model, block i drops the mixer output of block i - 1 with rate
            [0, 0, r / (depth - 1), ..., r * (depth - 2) / (depth - 1)][i] and the final add uses r.
        scan_backend: selective_scan backend of every Mamba mixer.

    The SSM-free twin (mixer="gated_cnn") keeps the patch embedding, class token, position
    embedding, depth, width, RMSNorms, fp32 residual stream and block ordering, and swaps each
    bidirectional Mamba mixer for MambaOut's Gated CNN mixer (default expansion_ratio 8/3, kernel 7:
    MambaOut's own choice, not tuned to match Vim's parameter count) applied to the patch tokens
    laid out on their (h, w) grid.  The class token has no place on that grid and is passed through
    the mixer unchanged, so it never sees the image: the twin therefore pools the patch tokens
    (global_pool='avg') instead of reading the class token.  The token is kept so that the twin's
    token sequence, position embedding and state-dict layout match Vim's.
    """

    def __init__(self, img_size: Union[int, Grid] = 224, patch_size: int = 16, stride: Optional[int] = None,
                 in_chans: int = 3, num_classes: int = 1000, global_pool: str = "token", embed_dim: int = 192,
                 depth: int = 24, d_state: int = 16, expand: float = 2, d_conv: int = 4,
                 bimamba_type: str = "v2", if_divide_out: bool = True, mixer: str = "mamba",
                 mixer_cfg: Optional[Dict[str, Any]] = None, use_middle_cls_token: bool = True,
                 norm_eps: float = 1e-5, residual_in_fp32: bool = True, drop_rate: float = 0.,
                 drop_path_rate: float = 0., scan_backend: str = "auto"):
        super().__init__()
        for name, value, minimum in (("in_chans", in_chans, 1), ("num_classes", num_classes, 0),
                                     ("embed_dim", embed_dim, 1), ("depth", depth, 1),
                                     ("patch_size", patch_size, 1), ("stride", stride or patch_size, 1)):
            positive_int("VisionMamba", name, value, minimum)
        if min(to_2tuple(img_size)) < patch_size:
            raise ValueError(f"VisionMamba: img_size={img_size!r}, expected at least patch_size={patch_size}")
        if global_pool not in ("token", "avg", ""):
            raise ValueError(f"VisionMamba: global_pool={global_pool!r}, expected 'token', 'avg' or ''")
        if bimamba_type not in ("v2", "none"):
            raise ValueError(f"VisionMamba: bimamba_type={bimamba_type!r}, expected 'v2' or 'none'")
        if mixer == "mamba":
            make_mixer = partial(MambaMixer, d_state=d_state, expand=expand, d_conv=d_conv,
                                 bidirectional=bimamba_type == "v2", if_divide_out=if_divide_out,
                                 scan_backend=scan_backend, **(mixer_cfg or {}))
        elif mixer == "ssd":
            make_mixer = partial(SSDMixer, d_state=d_state, expand=expand, d_conv=d_conv,
                                 bidirectional=bimamba_type == "v2", if_divide_out=if_divide_out,
                                 scan_backend=scan_backend, **(mixer_cfg or {}))
        elif mixer == "gated_cnn":
            make_mixer = partial(PatchGridGatedCNN, **(mixer_cfg or {}))
        else:
            raise ValueError(f"VisionMamba: mixer={mixer!r}, expected 'mamba', 'ssd' or 'gated_cnn'")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.use_middle_cls_token = use_middle_cls_token
        self.num_prefix_tokens = 1
        self.grad_checkpointing = False

        self.patch_embed = VimPatchEmbed(img_size, patch_size, stride, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [0.] + torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        self.layers = nn.ModuleList([
            VimBlock(embed_dim, make_mixer(embed_dim), norm_eps, dpr[i], residual_in_fp32, use_middle_cls_token)
            for i in range(depth)])
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0. else nn.Identity()
        self.norm_f = RmsNorm(embed_dim, eps=norm_eps)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

        reduction = self.patch_embed.stride[0]
        self.feature_info = [dict(module=f"layers.{i}", num_chs=embed_dim, reduction=reduction)
                             for i in range(depth)]
        self.init_weights()

    def init_weights(self) -> None:
        """The official init: lecun-normal patch conv, trunc-normal(0.02) head, pos_embed and class
        token, zero Linear biases (but the Mamba dt biases), and the residual-path output projections
        (Mamba's out_proj, the gated CNN's fc2) kaiming-uniform scaled by 1/sqrt(depth) (GPT-2)."""
        lecun_normal_(self.patch_embed.proj.weight)
        nn.init.zeros_(self.patch_embed.proj.bias)
        trunc_normal_(self.pos_embed, std=.02)
        trunc_normal_(self.cls_token, std=.02)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=.02)
        for m in self.modules():
            if isinstance(m, nn.Linear) and m.bias is not None and not getattr(m.bias, "_no_reinit", False):
                nn.init.zeros_(m.bias)
        for layer in self.layers:
            residual_proj = (layer.mixer.out_proj if isinstance(layer.mixer, (MambaMixer, SSDMixer))
                             else layer.mixer.fc2)
            nn.init.kaiming_uniform_(residual_proj.weight, a=math.sqrt(5))
            with torch.no_grad():
                residual_proj.weight /= math.sqrt(len(self.layers))

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        mixer_params = ("A_log", "A_b_log", "D", "D_b")
        return {"pos_embed", "cls_token"} | {
            n for n, _ in self.named_parameters() if n.rsplit(".", 1)[-1] in mixer_params}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(stem=r"^cls_token|^pos_embed|^patch_embed",
                    blocks=[(r"^layers\.(\d+)", None), (r"^norm_f", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        positive_int("reset_classifier", "num_classes", num_classes, minimum=0)
        if global_pool is not None:
            if global_pool not in ("token", "avg", ""):
                raise ValueError(f"reset_classifier: global_pool={global_pool!r}, expected 'token', 'avg' or ''")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def _cls_index(self, num_patches: int) -> int:
        return class_token_index(num_patches, self.use_middle_cls_token)

    def _embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, Grid]:
        x = self.patch_embed(x)
        batch, h, w, dim = x.shape
        x = x.reshape(batch, h * w, dim)
        i = self._cls_index(h * w)
        x = torch.cat((x[:, :i], self.cls_token.expand(batch, -1, -1), x[:, i:]), dim=1)
        pos_embed = self.pos_embed
        if (h, w) != tuple(self.patch_embed.grid_size):
            pos_embed = resample_pos_embed(pos_embed, self.patch_embed.grid_size, (h, w),
                                           self.use_middle_cls_token)
        return self.pos_drop(x + pos_embed), (h, w)

    def _layer(self, layer: VimBlock, hidden, residual, grid_size):
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint(layer, hidden, residual, grid_size)
        return layer(hidden, residual, grid_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> normalised tokens (B, h * w + 1, C), the class token in the middle."""
        hidden, grid_size = self._embed(x)
        residual = None
        for layer in self.layers:
            hidden, residual = self._layer(layer, hidden, residual, grid_size)
        stream = hidden if residual is None else residual + self.drop_path(hidden)
        return self.norm_f(stream.to(self.norm_f.weight.dtype))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == "token":
            return x[:, self._cls_index(x.shape[1] - 1)]
        if self.global_pool == "avg":
            i = self._cls_index(x.shape[1] - 1)
            return torch.cat((x[:, :i], x[:, i + 1:]), dim=1).mean(dim=1)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] < 2 or x.shape[2] != self.embed_dim:
            raise ValueError(f"VisionMamba.forward_head: x has shape {tuple(x.shape)}, expected (batch, tokens >= 2, "
                             f"{self.embed_dim}) as forward_features returns")
        x = self.pool(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            return_prefix_tokens: bool = False,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """timm's ViT interface.  The intermediate after block i is its residual stream plus its mixer
        output (the input the next block normalises), optionally through norm_f; the class token is
        split off as the prefix token.

        indices: last n blocks (int), all (None) or the listed ones.  output_fmt: 'NCHW' or 'NLC'.
        Returns (final normalised tokens, intermediates) or only the intermediates; with
        return_prefix_tokens each intermediate is a (spatial, class token) pair.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"forward_intermediates: output_fmt={output_fmt!r}, expected 'NCHW' or 'NLC'")
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        layers = self.layers[:max_index + 1] if stop_early else self.layers
        hidden, (h, w) = self._embed(x)
        i_cls = self._cls_index(h * w)
        residual = None
        intermediates, prefix_tokens = [], []
        for i, layer in enumerate(layers):
            hidden, residual = self._layer(layer, hidden, residual, (h, w))
            if i in take_indices:
                y = residual + hidden
                y = self.norm_f(y.to(self.norm_f.weight.dtype)) if norm else y
                prefix_tokens.append(y[:, i_cls:i_cls + 1])
                y = torch.cat((y[:, :i_cls], y[:, i_cls + 1:]), dim=1)
                intermediates.append(y.reshape(y.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()
                                     if output_fmt == "NCHW" else y)
        if return_prefix_tokens:
            intermediates = list(zip(intermediates, prefix_tokens))
        if intermediates_only:
            return intermediates
        stream = hidden if residual is None else residual + self.drop_path(hidden)
        return self.norm_f(stream.to(self.norm_f.weight.dtype)), intermediates

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        take_indices, max_index = feature_take_indices(len(self.layers), indices)
        self.layers = self.layers[:max_index + 1]
        if prune_norm:
            self.norm_f = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: VisionMamba,
                         use_ema: bool = False) -> Dict[str, torch.Tensor]:
    """Official Vim checkpoints (and our own) -> this model's state dict.

    Unwraps a training checkpoint (`unwrap_state_dict`) and resamples pos_embed when the checkpoint's
    patch grid differs from the model's (the class token's entry, in the middle, is kept). Every other
    key is passed through, so a strict load reports anything unexpected.
    """
    out = {}
    for k, v in unwrap_state_dict(state_dict, use_ema).items():
        if k == "pos_embed" and v.shape[1] != model.pos_embed.shape[1]:
            old_n = v.shape[1] - 1
            side = math.isqrt(old_n)
            if side * side != old_n:
                raise ValueError(f"checkpoint_filter_fn: pos_embed has {v.shape[1]} entries, expected a square "
                                 f"grid plus the class token (the model has {model.pos_embed.shape[1]})")
            v = resample_pos_embed(v, (side, side), model.patch_embed.grid_size, model.use_middle_cls_token)
        out[k] = v
    return out


def _create_vim(variant: str, pretrained: bool = False, **kwargs) -> VisionMamba:
    out_indices = kwargs.pop("out_indices", 3)
    return build_model_with_cfg(
        VisionMamba, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs)


def _cfg(url: str = "", **kwargs) -> Dict[str, Any]:
    return {
        "url": url, "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": None,
        "crop_pct": 0.875, "interpolation": "bicubic", "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj", "classifier": "head", "license": "apache-2.0", **kwargs,
    }


# The "in1k" tags are the official "midclstok" releases (huggingface.co/hustvl/Vim-{tiny,small,base}-midclstok);
# url is left empty: load a downloaded file with pretrained_cfg_overlay=dict(file=path).
default_cfgs = generate_default_cfgs({
    "vim_tiny_patch16_224.in1k": _cfg(),
    "vim_small_patch16_224.in1k": _cfg(),
    "vim_base_patch16_224.in1k": _cfg(),
    "vim_tiny_patch16_stride8_224.in1k": _cfg(),
    "vim_small_patch16_stride8_224.in1k": _cfg(),
    "vim_base_patch16_stride8_224": _cfg(),
    "vim_tiny_gcnn_patch16_224": _cfg(),
    "vim_small_gcnn_patch16_224": _cfg(),
    "vim_base_gcnn_patch16_224": _cfg(),
    "vim_tiny_ssd_patch16_224": _cfg(),
    "vim_small_ssd_patch16_224": _cfg(),
    "vim_base_ssd_patch16_224": _cfg(),
})

_TINY = dict(embed_dim=192, depth=24)
_SMALL = dict(embed_dim=384, depth=24)
_BASE = dict(embed_dim=768, depth=24)
_GCNN = dict(mixer="gated_cnn", global_pool="avg")
# Mamba-2 variants (ours; no official Vim release uses SSD): bidirectional Mamba-2 mixers with
# mamba_ssm's Mamba2 defaults (headdim 64, one B/C group) and d_state 64 as VMamba's m2 models
_SSD = dict(mixer="ssd", d_state=64)


@register_model
def vim_tiny_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_tiny_patch16_224", pretrained, **{**_TINY, **kwargs})


@register_model
def vim_small_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_small_patch16_224", pretrained, **{**_SMALL, **kwargs})


@register_model
def vim_base_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_base_patch16_224", pretrained, **{**_BASE, **kwargs})


@register_model
def vim_tiny_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_tiny_patch16_stride8_224", pretrained, **{**_TINY, 'stride': 8, **kwargs})


@register_model
def vim_small_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_small_patch16_stride8_224", pretrained, **{**_SMALL, 'stride': 8, **kwargs})


@register_model
def vim_base_patch16_stride8_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_base_patch16_stride8_224", pretrained, **{**_BASE, 'stride': 8, **kwargs})


@register_model
def vim_tiny_gcnn_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_tiny_gcnn_patch16_224", pretrained, **{**_TINY, **_GCNN, **kwargs})


@register_model
def vim_small_gcnn_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_small_gcnn_patch16_224", pretrained, **{**_SMALL, **_GCNN, **kwargs})


@register_model
def vim_base_gcnn_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_base_gcnn_patch16_224", pretrained, **{**_BASE, **_GCNN, **kwargs})


@register_model
def vim_tiny_ssd_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_tiny_ssd_patch16_224", pretrained, **{**_TINY, **_SSD, **kwargs})


@register_model
def vim_small_ssd_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_small_ssd_patch16_224", pretrained, **{**_SMALL, **_SSD, **kwargs})


@register_model
def vim_base_ssd_patch16_224(pretrained: bool = False, **kwargs) -> VisionMamba:
    return _create_vim("vim_base_ssd_patch16_224", pretrained, **{**_BASE, **_SSD, **kwargs})
