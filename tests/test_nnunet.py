"""U-Mamba from nnU-Net v2 plans.  The plans files in tests/data were written by the real nnunetv2 2.8.1
(`nnUNetv2_plan_experiment -d 901`, default and `-pl nnUNetPlannerResEncM` planners) for the Colin27 demo
data set of tools/make_demo_medical.py.  The trainer tests need the [nnunet] extra (marker `nnunet`)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from vision_mamba.integrations.nnunet import TRAINER_DIR, build_network, configuration, network_kwargs
from vision_mamba.models.umamba import UMambaBot, UMambaEnc, official_block_counts

DATA = Path(__file__).parent / "data"
PLANS = {"default": DATA / "nnUNetPlans_colin27_demo.json", "resenc_m": DATA / "nnUNetResEncUNetMPlans_colin27_demo.json"}


def plans(name):
    return json.loads(PLANS[name].read_text())


@pytest.mark.parametrize("plans_name", sorted(PLANS))
@pytest.mark.parametrize("config", ["2d", "3d_fullres"])
def test_network_follows_the_plans(plans_name, config):
    conf = configuration(plans(plans_name), config)
    arch = conf["architecture"]["arch_kwargs"]
    kw = network_kwargs(conf)
    encoder = arch.get("n_conv_per_stage", arch.get("n_blocks_per_stage"))
    assert kw["features_per_stage"] == tuple(arch["features_per_stage"])
    assert kw["strides"] == [tuple(s) for s in arch["strides"]]
    assert kw["kernel_sizes"] == [tuple(k) for k in arch["kernel_sizes"]]
    assert (kw["n_conv_per_stage"], kw["n_conv_per_stage_decoder"]) == \
        official_block_counts(encoder, arch["n_conv_per_stage_decoder"])
    assert kw["spatial_dims"] == len(conf["patch_size"]) == (2 if config == "2d" else 3)

    net = build_network(conf, 1, 4, kind="bot", scan_backend="torch")
    assert isinstance(net, UMambaBot) and len(net.encoder.stages) == arch["n_stages"]
    assert [s[0].conv1.stride for s in net.encoder.stages] == [tuple(s) for s in arch["strides"]]
    if config == "2d":  # a real forward at nnU-Net's patch: one output per decoder stage (deep supervision)
        with torch.no_grad():
            outs = net(torch.randn(1, 1, *conf["patch_size"]))
        assert len(outs) == arch["n_stages"] - 1 and outs[0].shape == (1, 4, *conf["patch_size"])


def test_enc_is_sized_for_the_patch():
    conf = configuration(plans("default"), "3d_fullres")
    net = build_network(conf, 1, 4, kind="enc", deep_supervision=False)
    assert isinstance(net, UMambaEnc) and net.deep_supervision is False


def test_old_plans_format_builds_the_same_network():
    # nnunetv2 < 2.4 (the official U-Mamba fork) kept the architecture in flat keys
    conf = configuration(plans("default"), "3d_fullres")
    arch = conf["architecture"]["arch_kwargs"]
    old = {"patch_size": conf["patch_size"], "conv_kernel_sizes": arch["kernel_sizes"],
           "pool_op_kernel_sizes": arch["strides"], "UNet_base_num_features": arch["features_per_stage"][0],
           "unet_max_num_features": max(arch["features_per_stage"]),
           "n_conv_per_stage_encoder": arch["n_conv_per_stage"], "n_conv_per_stage_decoder": arch["n_conv_per_stage_decoder"]}
    assert network_kwargs(old) == network_kwargs(conf)


def test_bad_plans_are_named():
    p = plans("default")
    with pytest.raises(ValueError, match=r"configuration='3d_lowres' is not in the plans \(available: \['2d', '3d_fullres'\]\)"):
        configuration(p, "3d_lowres")
    with pytest.raises(ValueError, match="no 'configurations' table"):
        configuration({"plans_name": "x"}, "2d")
    conf = configuration(p, "2d")
    del conf["architecture"]["arch_kwargs"]["strides"]
    with pytest.raises(ValueError, match="has no 'strides'"):
        network_kwargs(conf)
    with pytest.raises(ValueError, match="kind='mid'"):
        build_network(configuration(p, "2d"), 1, 2, kind="mid")
    p["configurations"]["3d_cascade_fullres"] = {"inherits_from": "3d_cascade_fullres"}
    with pytest.raises(ValueError, match="bad inherits_from chain"):
        configuration(p, "3d_cascade_fullres")


def test_inherited_configuration():
    p = plans("default")
    p["configurations"]["3d_big"] = {"inherits_from": "3d_fullres", "patch_size": [128, 128, 64]}
    conf = configuration(p, "3d_big")
    assert conf["patch_size"] == [128, 128, 64] and conf["architecture"] == p["configurations"]["3d_fullres"]["architecture"]


@pytest.mark.nnunet
def test_stock_nnunetv2_finds_and_builds_our_trainers(monkeypatch):
    pytest.importorskip("nnunetv2")
    monkeypatch.setenv("nnUNet_extTrainer", str(TRAINER_DIR))
    import importlib

    import nnunetv2.paths
    importlib.reload(nnunetv2.paths)   # it reads the environment at import
    import nnunetv2.utilities.find_objects as find_objects
    importlib.reload(find_objects)
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    manager = PlansManager(str(PLANS["default"]))
    for name, cls in (("nnUNetTrainerUMambaBot", UMambaBot), ("nnUNetTrainerUMambaEnc", UMambaEnc)):
        trainer = find_objects.recursive_find_trainer_class_by_name(name)
        assert trainer.__name__ == name
        net = trainer.build_network_architecture(manager, manager.get_configuration("3d_fullres"), 1, 4, True)
        assert isinstance(net, cls) and net.deep_supervision is True
        assert len(net.encoder.stages) == 5
