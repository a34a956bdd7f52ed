"""U-Mamba (Ma, Li & Wang 2024, bowang-lab/U-Mamba): nnU-Net's residual U-Net with Mamba layers, 2-D and 3-D.

Two networks share one residual conv encoder and decoder; they differ in where the Mamba layers sit:

    UMambaBot   one Mamba layer on the bottleneck (the output of the last encoder stage)
    UMambaEnc   a Mamba layer after encoder stages (3-D: every stage; 2-D: every other stage, ending with
                the last), each of which feeds both the next stage and the decoder's skip connection

Module names follow the official code (umamba/nnunetv2/nets/UMamba{Bot,Enc}_{2d,3d}.py), so its state
dict keys are ours once `checkpoint_filter_fn` has dropped its aliases (see there):

    encoder.stem                  BasicResBlock(in_channels -> f[0]) + (n_conv_per_stage[0] - 1) BasicBlockD
    encoder.stages.{s}            BasicResBlock(f[s-1] -> f[s], stride strides[s]) + (n_conv_per_stage[s] - 1)
                                  BasicBlockD  (stage 0 reads the stem's f[0] channels)
    encoder.mamba_layers.{s}      UMambaEnc: MambaLayer after stage s, or nn.Identity
    mamba_layer                   UMambaBot: MambaLayer on the bottleneck
    decoder.upsample_layers.{i}   nearest upsampling by the stride of the stage below, then a 1x1 conv
    decoder.stages.{i}            concat the skip, BasicResBlock(2 f -> f) + (n_conv_per_stage_decoder[i] - 1)
                                  BasicBlockD
    decoder.seg_layers.{i}        1x1 conv -> num_classes, one per decoder stage (deep supervision)

    BasicResBlock   conv-norm-act-conv-norm, plus a 1x1 conv of the input (strided like the first conv), add, act
    BasicBlockD     the same with an identity skip (dynamic_network_architectures' block, as U-Mamba uses it)
    MambaLayer      tokens -> LayerNorm -> Mamba -> back to a feature map, with NO residual around it: the
                    official layer has none, its output replaces the features

Convs have biases, norms are InstanceNorm(eps 1e-5, affine), activations LeakyReLU(0.01), and the 2-D /
3-D convs get nnU-Net's He init (kaiming normal, a = 0.01, zero bias), as the official plans build them.

Official behaviours kept (each is a default that an argument can change):

* 2-D decoders do not concatenate the stage-0 skip at their last (highest-resolution) stage; 3-D ones do
  (`full_res_skip`).
* UMambaEnc, 2-D: Mamba layers after every other stage, counting back from the last; 3-D: after every
  stage (`mamba_stages`).
* UMambaEnc "channel tokens": where a stage's feature map has no more positions than channels, the
  layer scans the channels as tokens, each a vector of all positions (LayerNorm and Mamba of width =
  number of positions).  That width is fixed when the network is built, from `input_size` (the official
  code requires the training patch size); such a network only takes inputs that pad to that size.
* Deep supervision outputs from highest to lowest resolution; without it, only the last seg layer runs.

What differs from the official code, and why:

* Any input size: the input is zero-padded at its end to a multiple of the total stride of each axis
  and every output is cropped back to ceil(size / downsampling of that output), so the full-resolution
  output has the input's size (when strides[0] is 1, as in nnU-Net).  The official networks assume
  nnU-Net patch sizes, which are multiples of the total stride.
* `n_conv_per_stage` and `n_conv_per_stage_decoder` are built as given.  The official constructors
  overwrite them, one block for the deeper half of the encoder and the higher half of the decoder;
  `official_block_counts` applies that rule, and the factories' defaults come from it.
* `input_size` is optional (UMambaEnc): without it no layer uses channel tokens.
* No autocast switch around the Mamba layer: the shared selective scan keeps its state in fp32 whatever
  the input dtype, so the official layer's upcast to fp32 is left to autocast.
* The Mamba mixer is the project's `MambaMixer` (mamba_ssm's parameter names, any device, backend chosen
  by `scan_backend`) instead of mamba_ssm's CUDA module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from vision_mamba.layers.mamba_mixer import MambaMixer

from ._checkpoint import unwrap_state_dict
from ._inputs import check_matches

__all__ = ["MambaLayer", "UMambaBot", "UMambaEnc", "checkpoint_filter_fn", "official_block_counts",
           "umamba_bot", "umamba_enc"]

Axes = Tuple[int, ...]
# one value for every stage, or one per stage; a stage's kernel or stride is an int or one int per axis
PerStage = Union[int, Sequence[Union[int, Sequence[int]]]]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def _conv(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: Axes, stride: Axes) -> nn.Module:
    """'same' conv (odd kernel): at a stride that divides the size, the size is divided exactly."""
    return _CONV[spatial_dims](in_channels, out_channels, kernel_size, stride, padding=[k // 2 for k in kernel_size])


def _norm(spatial_dims: int, channels: int) -> nn.Module:
    return _NORM[spatial_dims](channels, eps=1e-5, affine=True)


def _act() -> nn.Module:
    return nn.LeakyReLU(0.01, inplace=True)


def _ones(spatial_dims: int) -> Axes:
    return (1,) * spatial_dims


# Two residual blocks rather than one parameterised block: the official code builds the first block of a
# stage and the others from different classes, with different skips and different state-dict layouts.
class BasicResBlock(nn.Module):
    """conv-norm-act-conv-norm + 1x1 conv of the input, add, act.  The first block of every stage: its
    skip is always a (strided) 1x1 conv, even where width and size do not change, as in the official code."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: Axes, stride: Axes):
        super().__init__()
        ones = _ones(spatial_dims)
        self.conv1 = _conv(spatial_dims, in_channels, out_channels, kernel_size, stride)
        self.norm1 = _norm(spatial_dims, out_channels)
        self.act1 = _act()
        self.conv2 = _conv(spatial_dims, out_channels, out_channels, kernel_size, ones)
        self.norm2 = _norm(spatial_dims, out_channels)
        self.act2 = _act()
        self.conv3 = _CONV[spatial_dims](in_channels, out_channels, ones, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act2(y + self.conv3(x))


class ConvNorm(nn.Module):
    """conv-norm(-act) under the names of dynamic_network_architectures' ConvDropoutNormReLU."""

    def __init__(self, spatial_dims: int, channels: int, kernel_size: Axes, act: bool):
        super().__init__()
        self.conv = _conv(spatial_dims, channels, channels, kernel_size, _ones(spatial_dims))
        self.norm = _norm(spatial_dims, channels)
        self.nonlin = _act() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin(self.norm(self.conv(x)))


class BasicBlockD(nn.Module):
    """conv-norm-act-conv-norm + identity, add, act: the later blocks of a stage (dynamic_network_architectures'
    BasicBlockD at stride 1 and constant width, the only way U-Mamba uses it, where its skip is the identity)."""

    def __init__(self, spatial_dims: int, channels: int, kernel_size: Axes):
        super().__init__()
        self.conv1 = ConvNorm(spatial_dims, channels, kernel_size, act=True)
        self.conv2 = ConvNorm(spatial_dims, channels, kernel_size, act=False)
        self.nonlin2 = _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlin2(self.conv2(self.conv1(x)) + x)


def _stage(spatial_dims: int, in_channels: int, out_channels: int, kernel_size: Axes, stride: Axes,
           n_blocks: int) -> nn.Sequential:
    return nn.Sequential(BasicResBlock(spatial_dims, in_channels, out_channels, kernel_size, stride),
                         *(BasicBlockD(spatial_dims, out_channels, kernel_size) for _ in range(n_blocks - 1)))


class MambaLayer(nn.Module):
    """(B, C, *spatial) -> (B, C, *spatial): LayerNorm then a unidirectional Mamba over a token sequence,
    no residual (as the official layer).

    Patch tokens (default): one token per position in row-major order, `dim` = C.
    Channel tokens (`channel_token=True`): one token per channel, its features the C's flattened feature
    map, `dim` = number of positions; the official encoder picks this where positions <= channels.
    """

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: float = 2,
                 channel_token: bool = False, scan_backend: str = "auto"):
        super().__init__()
        self.dim = dim
        self.channel_token = channel_token
        self.norm = nn.LayerNorm(dim)
        self.mamba = MambaMixer(dim, d_state=d_state, d_conv=d_conv, expand=expand, bidirectional=False,
                                scan_backend=scan_backend)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2) if self.channel_token else x.flatten(2).transpose(1, 2)
        out = self.mamba(self.norm(tokens))
        # contiguous: the transposed view reshapes to channels-last strides, and on CPU with one thread
        # torch 2.15's (oneDNN) conv backward on such an input corrupted the heap ("double free")
        return (out if self.channel_token else out.transpose(1, 2)).reshape(x.shape).contiguous()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, channel_token={self.channel_token}"


class UpsampleLayer(nn.Module):
    """Nearest-neighbour upsampling by `scale` then a 1x1 conv: the official decoder's upsampling (nnU-Net's
    own ResidualEncoderUNet uses a transposed conv instead)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, scale: Axes):
        super().__init__()
        self.conv = _CONV[spatial_dims](in_channels, out_channels, 1)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


@dataclass(frozen=True)
class _Config:
    """A checked U-Net configuration, every per-stage value expanded (kernels and strides per axis)."""
    spatial_dims: int
    in_channels: int
    num_classes: int
    features: Tuple[int, ...]
    kernel_sizes: Tuple[Axes, ...]
    strides: Tuple[Axes, ...]
    n_blocks: Tuple[int, ...]
    n_blocks_decoder: Tuple[int, ...]

    @property
    def n_stages(self) -> int:
        return len(self.features)

    def downsampling(self, stage: int) -> Axes:
        """Per axis, how much smaller than the input the output of encoder stage `stage` is."""
        # lists, not generators inside math.prod: torch.compile traces lists without a graph break
        return tuple(math.prod([s[axis] for s in self.strides[:stage + 1]]) for axis in range(self.spatial_dims))


def _positive_int(model: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{model}: {name}={value!r}, expected a positive int")
    return value


def _per_stage(model: str, name: str, value: PerStage, n: int, what: str) -> list:
    """An int -> the same for every stage; a sequence must have one entry per stage."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value] * n
    if not isinstance(value, Sequence) or len(value) != n:
        got = f"{len(value)} entries" if isinstance(value, Sequence) else repr(value)
        raise ValueError(f"{model}: {name} has {got}, expected an int or one entry per {what} ({n})")
    return list(value)


def _per_axis(model: str, name: str, value: Any, spatial_dims: int, odd: bool = False) -> Axes:
    axes = (value,) * spatial_dims if isinstance(value, int) else value
    if not isinstance(axes, Sequence) or len(axes) != spatial_dims or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 and (v % 2 == 1 or not odd) for v in axes):
        kind = "odd positive int" if odd else "positive int"
        raise ValueError(f"{model}: {name}={value!r}, expected an {kind} or {spatial_dims} of them (one per axis)")
    return tuple(axes)


def _parse_config(model: str, spatial_dims: int, in_channels: int, num_classes: int,
                  features_per_stage: Sequence[int], kernel_sizes: PerStage, strides: Optional[PerStage],
                  n_conv_per_stage: PerStage, n_conv_per_stage_decoder: PerStage) -> _Config:
    if spatial_dims not in (2, 3):
        raise ValueError(f"{model}: spatial_dims={spatial_dims!r}, expected 2 or 3")
    _positive_int(model, "in_channels", in_channels)
    _positive_int(model, "num_classes", num_classes)
    if not isinstance(features_per_stage, Sequence) or len(features_per_stage) < 2:
        raise ValueError(f"{model}: features_per_stage={features_per_stage!r}, expected a sequence of at least 2 "
                         "widths (one per stage; there is no U-Net without a stage below the first)")
    features = tuple(_positive_int(model, f"features_per_stage[{s}]", f) for s, f in enumerate(features_per_stage))
    n = len(features)
    stages = "stage (as features_per_stage)"
    kernels = _per_stage(model, "kernel_sizes", kernel_sizes, n, stages)
    if strides is None:  # nnU-Net's: the first stage at full resolution, then halving
        strides = (1,) + (2,) * (n - 1)
    stride_list = _per_stage(model, "strides", strides, n, stages)
    blocks = _per_stage(model, "n_conv_per_stage", n_conv_per_stage, n, stages)
    blocks_dec = _per_stage(model, "n_conv_per_stage_decoder", n_conv_per_stage_decoder, n - 1,
                            "decoder stage (len(features_per_stage) - 1)")
    return _Config(
        spatial_dims, in_channels, num_classes, features,
        tuple(_per_axis(model, f"kernel_sizes[{s}]", k, spatial_dims, odd=True) for s, k in enumerate(kernels)),
        tuple(_per_axis(model, f"strides[{s}]", t, spatial_dims) for s, t in enumerate(stride_list)),
        tuple(_positive_int(model, f"n_conv_per_stage[{s}]", b) for s, b in enumerate(blocks)),
        tuple(_positive_int(model, f"n_conv_per_stage_decoder[{i}]", b) for i, b in enumerate(blocks_dec)))


class ResidualEncoder(nn.Module):
    """stem, then the stages, each optionally followed by its Mamba layer; returns every stage's output."""

    def __init__(self, cfg: _Config, mamba_layers: Optional[Sequence[nn.Module]] = None):
        super().__init__()
        sd, f = cfg.spatial_dims, cfg.features
        self.stem = _stage(sd, cfg.in_channels, f[0], cfg.kernel_sizes[0], _ones(sd), cfg.n_blocks[0])
        self.stages = nn.ModuleList(
            _stage(sd, f[max(s - 1, 0)], f[s], cfg.kernel_sizes[s], cfg.strides[s], cfg.n_blocks[s])
            for s in range(cfg.n_stages))
        self.mamba_layers = None if mamba_layers is None else nn.ModuleList(mamba_layers)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.stem(x)
        skips = []
        for s, stage in enumerate(self.stages):
            x = stage(x)
            if self.mamba_layers is not None:
                x = self.mamba_layers[s](x)
            skips.append(x)
        return skips


class ResidualDecoder(nn.Module):
    """Upsample, concat the skip, residual blocks, from the bottleneck up; a seg head per stage.

    Decoder stage i works at the resolution of encoder stage n - 2 - i.  Without `full_res_skip` the
    last stage gets no skip (the official 2-D decoder), so its first block reads f channels, not 2 f.
    """

    def __init__(self, cfg: _Config, full_res_skip: bool):
        super().__init__()
        sd, f, n = cfg.spatial_dims, cfg.features, cfg.n_stages
        self.full_res_skip = full_res_skip
        self.upsample_layers = nn.ModuleList(
            UpsampleLayer(sd, f[n - 1 - i], f[n - 2 - i], cfg.strides[n - 1 - i]) for i in range(n - 1))
        self.stages = nn.ModuleList(
            _stage(sd, f[n - 2 - i] * (2 if self._concat(i) else 1), f[n - 2 - i], cfg.kernel_sizes[n - 2 - i],
                   _ones(sd), cfg.n_blocks_decoder[i])
            for i in range(n - 1))
        self.seg_layers = nn.ModuleList(_CONV[sd](f[n - 2 - i], cfg.num_classes, 1) for i in range(n - 1))

    def _concat(self, i: int) -> bool:
        return self.full_res_skip or i < len(self.upsample_layers) - 1

    def forward(self, skips: List[torch.Tensor], deep_supervision: bool) -> List[torch.Tensor]:
        """Encoder outputs (highest resolution first) -> logits, highest resolution first: one per decoder
        stage with deep supervision, else only the last stage's."""
        x = skips[-1]
        last = len(self.stages) - 1
        outputs = []
        for i, (upsample, stage, seg) in enumerate(zip(self.upsample_layers, self.stages, self.seg_layers)):
            x = upsample(x)
            if self._concat(i):
                x = torch.cat((x, skips[-(i + 2)]), dim=1)
            x = stage(x)
            if deep_supervision or i == last:
                outputs.append(seg(x))
        return outputs[::-1]


def _init_he(module: nn.Module) -> None:
    """nnU-Net's InitWeights_He(1e-2): 2-D/3-D convs only, so the Mamba mixer keeps its own init."""
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        nn.init.kaiming_normal_(module.weight, a=1e-2)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class _UMamba(nn.Module):
    """The encoder-decoder, the input check, and the padding to a multiple of the total stride."""

    def __init__(self, cfg: _Config, deep_supervision: bool, full_res_skip: Optional[bool],
                 encoder_mamba_layers: Optional[Sequence[nn.Module]] = None):
        super().__init__()
        self.cfg = cfg
        self.spatial_dims = cfg.spatial_dims
        self.in_channels = cfg.in_channels
        self.num_classes = cfg.num_classes
        self.deep_supervision = deep_supervision
        self.total_stride = cfg.downsampling(cfg.n_stages - 1)
        self.encoder = ResidualEncoder(cfg, encoder_mamba_layers)
        self.decoder = ResidualDecoder(cfg, cfg.spatial_dims == 3 if full_res_skip is None else full_res_skip)
        self.apply(_init_he)

    def padded_size(self, size: Sequence[int]) -> Axes:
        """The spatial size an input of `size` is zero-padded to: the next multiple of the total stride."""
        return tuple(math.ceil(s / t) * t for s, t in zip(size, self.total_stride))

    def _check_input(self, x: torch.Tensor) -> None:
        name = type(self).__name__
        axes = "D, H, W" if self.spatial_dims == 3 else "H, W"
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"{name}: x must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != self.spatial_dims + 2 or x.shape[0] == 0 or x.shape[1] != self.in_channels \
                or 0 in x.shape[2:]:
            raise ValueError(f"{name}: x has shape {tuple(x.shape)}, expected (batch >= 1, in_channels="
                             f"{self.in_channels}, {axes}) with sizes >= 1 for spatial_dims={self.spatial_dims}")
        if not x.is_floating_point():
            raise ValueError(f"{name}: x has dtype {x.dtype}, expected a floating-point image")
        check_matches(x, self.encoder.stem[0].conv1.weight, name)

    def _encode(self, x: torch.Tensor) -> List[torch.Tensor]:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, List[torch.Tensor]]:
        """(B, in_channels, *spatial) -> logits (B, num_classes, *spatial) (when strides[0] is 1), or with
        deep supervision a list of logits from highest to lowest resolution, output j of size
        ceil(spatial / downsampling of encoder stage j)."""
        self._check_input(x)
        size = x.shape[2:]
        pad = [p - s for p, s in zip(self.padded_size(size), size)]
        if any(pad):
            # F.pad takes (begin, end) pairs from the last axis back; padding only at the end keeps the
            # image at the origin of every downsampled map, so cropping is a slice from 0
            x = F.pad(x, [q for p in reversed(pad) for q in (0, p)])
        outputs = self.decoder(self._encode(x), self.deep_supervision)
        outputs = [out[(..., *(slice(0, math.ceil(s / d)) for s, d in zip(size, self.cfg.downsampling(j))))]
                   for j, out in enumerate(outputs)]
        return outputs if self.deep_supervision else outputs[0]


class UMambaBot(_UMamba):
    """U-Mamba Bot: the residual U-Net with one Mamba layer on the bottleneck (module docstring).

    Args:
        spatial_dims: 2 or 3 (Conv2d / Conv3d and their InstanceNorms).
        in_channels, num_classes: input channels, output logits.
        features_per_stage: width of each encoder stage; its length is the number of stages (>= 2).
        kernel_sizes, strides: per stage (or one for all), each an int or one per axis; kernels odd.
            strides[0] is normally 1 (nnU-Net), so that the first skip and the output are at full
            resolution; None = (1, 2, 2, ...).
        n_conv_per_stage: residual blocks per encoder stage (the stem has n_conv_per_stage[0] too).
        n_conv_per_stage_decoder: residual blocks per decoder stage, from the bottleneck up (n_stages - 1).
        deep_supervision: return the logits of every decoder stage (highest resolution first).
        d_state, d_conv, expand, scan_backend: of the Mamba mixer (`MambaMixer`).
        full_res_skip: concatenate the stage-0 skip in the last decoder stage; None = official (3-D only).
    """

    def __init__(self, spatial_dims: int, in_channels: int, num_classes: int, features_per_stage: Sequence[int],
                 kernel_sizes: PerStage = 3, strides: Optional[PerStage] = None, n_conv_per_stage: PerStage = 1,
                 n_conv_per_stage_decoder: PerStage = 1, deep_supervision: bool = False, d_state: int = 16,
                 d_conv: int = 4, expand: float = 2, scan_backend: str = "auto",
                 full_res_skip: Optional[bool] = None):
        cfg = _parse_config(type(self).__name__, spatial_dims, in_channels, num_classes, features_per_stage,
                            kernel_sizes, strides, n_conv_per_stage, n_conv_per_stage_decoder)
        super().__init__(cfg, deep_supervision, full_res_skip)
        self.mamba_layer = MambaLayer(cfg.features[-1], d_state, d_conv, expand, scan_backend=scan_backend)

    def _encode(self, x: torch.Tensor) -> List[torch.Tensor]:
        skips = self.encoder(x)
        skips[-1] = self.mamba_layer(skips[-1])
        return skips


class UMambaEnc(_UMamba):
    """U-Mamba Enc: the residual U-Net with a Mamba layer after encoder stages (module docstring).

    Args: those of `UMambaBot`, and
        input_size: the training patch size (spatial, without batch and channels).  Given, a stage whose
            feature map (of the padded `input_size`) has no more positions than channels gets a channel-token
            Mamba layer (official rule), and then the network only takes inputs that pad to the same size.
            None: patch tokens everywhere, any input size.
        mamba_stages: encoder stages followed by a Mamba layer (nn.Identity elsewhere); None = official:
            every stage in 3-D, every other stage counting back from the last in 2-D.
    """

    def __init__(self, spatial_dims: int, in_channels: int, num_classes: int, features_per_stage: Sequence[int],
                 kernel_sizes: PerStage = 3, strides: Optional[PerStage] = None, n_conv_per_stage: PerStage = 1,
                 n_conv_per_stage_decoder: PerStage = 1, deep_supervision: bool = False, d_state: int = 16,
                 d_conv: int = 4, expand: float = 2, scan_backend: str = "auto",
                 full_res_skip: Optional[bool] = None, input_size: Optional[Sequence[int]] = None,
                 mamba_stages: Optional[Sequence[int]] = None):
        name = type(self).__name__
        cfg = _parse_config(name, spatial_dims, in_channels, num_classes, features_per_stage,
                            kernel_sizes, strides, n_conv_per_stage, n_conv_per_stage_decoder)
        n = cfg.n_stages
        if mamba_stages is None:
            mamba_stages = range(n) if spatial_dims == 3 else range((n - 1) % 2, n, 2)
        elif not isinstance(mamba_stages, Sequence) or not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 <= s < n for s in mamba_stages):
            raise ValueError(f"{name}: mamba_stages={mamba_stages!r}, expected stage indices in [0, {n})")
        if input_size is not None:
            input_size = _per_axis(name, "input_size", input_size, spatial_dims)
        positions = [None] * n
        if input_size is not None:
            total = cfg.downsampling(n - 1)
            padded = [math.ceil(s / t) * t for s, t in zip(input_size, total)]
            positions = [math.prod(p // d for p, d in zip(padded, cfg.downsampling(s))) for s in range(n)]
        channel_token = [p is not None and p <= f for p, f in zip(positions, cfg.features)]
        layers = [MambaLayer(positions[s] if channel_token[s] else cfg.features[s], d_state, d_conv, expand,
                             channel_token=channel_token[s], scan_backend=scan_backend)
                  if s in mamba_stages else nn.Identity() for s in range(n)]
        super().__init__(cfg, deep_supervision, full_res_skip, layers)
        self.input_size = input_size
        self.channel_token_stages = tuple(s for s in range(n) if channel_token[s] and s in mamba_stages)

    def _check_input(self, x: torch.Tensor) -> None:
        super()._check_input(x)
        if self.channel_token_stages and self.padded_size(x.shape[2:]) != self.padded_size(self.input_size):
            raise ValueError(
                f"{type(self).__name__}: x has spatial size {tuple(x.shape[2:])}, padded to "
                f"{self.padded_size(x.shape[2:])}, but the channel-token Mamba layers of stages "
                f"{list(self.channel_token_stages)} were built for input_size={self.input_size} (padded to "
                f"{self.padded_size(self.input_size)}); give an input of that padded size or build without input_size")


def official_block_counts(n_conv_per_stage: Sequence[int],
                          n_conv_per_stage_decoder: Sequence[int]) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """The block counts the official constructors actually build from nnU-Net's plans: one block in encoder
    stages ceil(n/2) .. n-1 and in decoder stages ceil(n/2) .. n-2 (counted from the bottleneck up),
    whatever the plans say.  Our constructors build the counts they are given, so this is explicit."""
    n = len(n_conv_per_stage)
    if len(n_conv_per_stage_decoder) != n - 1:
        raise ValueError(f"official_block_counts: n_conv_per_stage_decoder has {len(n_conv_per_stage_decoder)} "
                         f"entries, expected len(n_conv_per_stage) - 1 = {n - 1}")
    half = math.ceil(n / 2)
    return (tuple(b if s < half else 1 for s, b in enumerate(n_conv_per_stage)),
            tuple(b if i < half else 1 for i, b in enumerate(n_conv_per_stage_decoder)))


def checkpoint_filter_fn(checkpoint: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """An official U-Mamba (nnU-Net) checkpoint, or our own, -> a state dict for `load_state_dict`.

    Takes nnU-Net's 'network_weights' (else what `unwrap_state_dict` finds) and drops the official aliases:
    `decoder.encoder.*` (its decoder holds the encoder as a submodule) and `*.all_modules.*` (each
    ConvDropoutNormReLU registers its layers twice).  Everything else passes through, so a strict load
    reports any other mismatch.
    """
    weights = checkpoint["network_weights"] if isinstance(checkpoint.get("network_weights"), dict) \
        else unwrap_state_dict(checkpoint)
    return {k: v for k, v in weights.items() if not k.startswith("decoder.encoder.") and ".all_modules." not in k}


# nnU-Net's residual-encoder block counts (1, 3, 4, 6) trimmed as the official code trims them, 4 stages
_ENCODER_BLOCKS, _DECODER_BLOCKS = official_block_counts((1, 3, 4, 6), (1, 1, 1))
_DEFAULTS: Dict[str, Any] = dict(features_per_stage=(32, 64, 128, 256), kernel_sizes=3, strides=(1, 2, 2, 2),
                                 n_conv_per_stage=_ENCODER_BLOCKS, n_conv_per_stage_decoder=_DECODER_BLOCKS,
                                 deep_supervision=True)


def umamba_bot(spatial_dims: int, in_channels: int, num_classes: int, **kwargs: Any) -> UMambaBot:
    """A small U-Mamba Bot: 4 stages of 32, 64, 128, 256 channels, kernels 3, strides (1, 2, 2, 2), encoder
    blocks (1, 3, 1, 1), decoder blocks (1, 1, 1), deep supervision; any `UMambaBot` argument overrides."""
    return UMambaBot(spatial_dims, in_channels, num_classes, **{**_DEFAULTS, **kwargs})


def umamba_enc(spatial_dims: int, in_channels: int, num_classes: int, **kwargs: Any) -> UMambaEnc:
    """A small U-Mamba Enc with the defaults of `umamba_bot`; any `UMambaEnc` argument overrides (give
    `input_size` for the official channel-token layers)."""
    return UMambaEnc(spatial_dims, in_channels, num_classes, **{**_DEFAULTS, **kwargs})
