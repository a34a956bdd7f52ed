"""U-Mamba as nnU-Net v2 trainers, without forking nnU-Net.

The official U-Mamba ships a modified copy of all of nnunetv2 under the same package name, so it cannot
be installed beside the real one.  Here the stock `nnunetv2` package (extra `[nnunet]`) finds our
trainers through its `nnUNet_extTrainer` search path:

    export nnUNet_extTrainer=$(python3 -m vision_mamba.integrations.nnunet)
    nnUNetv2_train DATASET_ID 3d_fullres all -tr nnUNetTrainerUMambaBot     # or nnUNetTrainerUMambaEnc

This module reads nnU-Net plans (plain dicts, so it needs no nnunetv2 and is tested on its own); the
trainer classes live in `nnunet_trainers/` beside it, the folder that path points to.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..models.umamba import UMambaBot, UMambaEnc, official_block_counts

TRAINER_DIR = Path(__file__).with_name("nnunet_trainers")
NETWORKS = {"bot": UMambaBot, "enc": UMambaEnc}


def configuration(plans: Mapping[str, Any], name: str) -> dict:
    """plans["configurations"][name] with its `inherits_from` chain resolved (as nnU-Net's PlansManager)."""
    configs = plans.get("configurations")
    if not isinstance(configs, Mapping):
        raise ValueError(f"plans has no 'configurations' table (keys: {sorted(plans)}): not an nnU-Net v2 plans file")
    if name not in configs:
        raise ValueError(f"configuration={name!r} is not in the plans (available: {sorted(configs)})")
    conf, seen = dict(configs[name]), {name}
    while "inherits_from" in conf:
        parent = conf.pop("inherits_from")
        if parent in seen or parent not in configs:
            raise ValueError(f"configuration {name!r}: bad inherits_from chain at {parent!r}")
        seen.add(parent)
        conf = {**configs[parent], **conf}
    return conf


def _require(conf: Mapping[str, Any], key: str, where: str):
    if key not in conf:
        raise ValueError(f"{where} has no {key!r} (keys: {sorted(conf)})")
    return conf[key]


def network_kwargs(conf: Mapping[str, Any], official_blocks: bool = True) -> dict:
    """UMambaBot / UMambaEnc arguments from one configuration of nnU-Net v2 plans (see `configuration`):
    stages, widths, kernels, strides and block counts, from the `architecture` table of current plans
    (nnunetv2 >= 2.4) or the flat keys of older ones (the format the official U-Mamba fork reads).

    official_blocks: apply the official constructors' block-count rule (`official_block_counts`), so
    that the network (and its state dict) is the one U-Mamba builds from the same plans.
    """
    where = "plans configuration"
    patch = list(_require(conf, "patch_size", where))
    if "architecture" in conf:
        arch = _require(conf["architecture"], "arch_kwargs", f"{where} architecture")
        where += " architecture.arch_kwargs"
        features = list(_require(arch, "features_per_stage", where))
        kernels, strides = _require(arch, "kernel_sizes", where), _require(arch, "strides", where)
        # ResidualEncoderUNet plans name the encoder's counts n_blocks_per_stage
        encoder = arch.get("n_conv_per_stage", arch.get("n_blocks_per_stage"))
        if encoder is None:
            raise ValueError(f"{where} has neither 'n_conv_per_stage' nor 'n_blocks_per_stage'")
        decoder = _require(arch, "n_conv_per_stage_decoder", where)
    else:  # nnunetv2 < 2.4
        kernels, strides = _require(conf, "conv_kernel_sizes", where), _require(conf, "pool_op_kernel_sizes", where)
        base, cap = _require(conf, "UNet_base_num_features", where), _require(conf, "unet_max_num_features", where)
        features = [min(base * 2 ** s, cap) for s in range(len(kernels))]
        encoder = _require(conf, "n_conv_per_stage_encoder", where)
        decoder = _require(conf, "n_conv_per_stage_decoder", where)
    n = len(features)
    if len(kernels) != n or len(strides) != n or len(encoder) != n or len(decoder) != n - 1:
        raise ValueError(f"{where}: {n} stages in features_per_stage but {len(kernels)} kernel sizes, "
                         f"{len(strides)} strides, {len(encoder)} encoder and {len(decoder)} decoder block counts "
                         f"(expected {n}, {n}, {n}, {n - 1})")
    if official_blocks:
        encoder, decoder = official_block_counts(encoder, decoder)
    return dict(spatial_dims=len(patch), features_per_stage=tuple(features),
                kernel_sizes=[tuple(k) for k in kernels], strides=[tuple(s) for s in strides],
                n_conv_per_stage=tuple(encoder), n_conv_per_stage_decoder=tuple(decoder), patch_size=tuple(patch))


def build_network(conf: Mapping[str, Any], num_input_channels: int, num_output_channels: int,
                  kind: str = "bot", deep_supervision: bool = True, official_blocks: bool = True, **kwargs: Any):
    """A UMambaBot (`kind="bot"`) or UMambaEnc (`"enc"`) as one configuration of nnU-Net's plans describes
    it (`configuration(plans, "3d_fullres")`); `kwargs` go to the network (d_state, scan_backend, ...)."""
    if kind not in NETWORKS:
        raise ValueError(f"kind={kind!r}, expected one of {sorted(NETWORKS)}")
    args = network_kwargs(conf, official_blocks)
    spatial_dims, patch = args.pop("spatial_dims"), args.pop("patch_size")
    if kind == "enc":  # channel-token layers are sized for the training patch, as in the official code
        kwargs.setdefault("input_size", patch)
    return NETWORKS[kind](spatial_dims, num_input_channels, num_output_channels,
                          deep_supervision=deep_supervision, **args, **kwargs)


if __name__ == "__main__":  # the folder to put in nnUNet_extTrainer
    print(TRAINER_DIR)
