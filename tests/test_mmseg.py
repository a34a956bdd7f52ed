"""The mmsegmentation plug-in (vision_mamba.integrations.mmseg), on the real mmseg 1.2 / mmcv 2.1 with its
compiled ops.  Marker `mmseg`; skipped where mmseg is not importable (CI runs this group with
.ci/mmseg_env.sh, which builds and caches mmcv: DEVELOPERS.md).

Every shipped config is loaded with mmengine, shrunk for the CPU (small backbone, 64 x 64 images) and
built by mmseg's own builder; one train step and `predict` run through mmseg's EncoderDecoder.
"""
from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmseg", reason="mmsegmentation is not installed (the [mmseg] extra + mmcv 2.1: DEVELOPERS.md)")

import timm  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.model import revert_sync_batchnorm  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import vision_mamba.integrations.mmseg as plugin  # noqa: E402

pytestmark = pytest.mark.mmseg

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs" / "mmseg").glob("upernet_*_512x512_ade20k.py"))
SIZE = 64
# per family: keyword arguments that shrink the backbone for the CPU (the config's own arguments kept)
SHRINK = {
    "vim_": dict(embed_dim=32, depth=4, d_state=4, img_size=SIZE, pyramid_blocks=[0, 1, 2, 3]),
    "vmamba_": dict(dims=16, depths=(1, 1, 2, 1)),
    "mambaout_": dict(dims=(16, 24, 32, 48), depths=(1, 1, 1, 1)),
}


def _shrink_kwargs(name: str) -> dict:
    return next(kw for prefix, kw in SHRINK.items() if name.startswith(prefix))


def load_config(path: Path) -> Config:
    return Config.fromfile(str(path))


def shrunk_model_cfg(cfg: Config, num_classes: int = 5):
    """cfg.model with a small backbone, small heads and BN (one process), in/out channels wired from
    the backbone's declared out_channels."""
    model = copy.deepcopy(cfg.model)
    model.backbone.update(_shrink_kwargs(model.backbone.name))
    channels = MODELS.build(model.backbone).out_channels
    model.data_preprocessor.size = (SIZE, SIZE)
    model.decode_head.update(in_channels=channels, channels=16, num_classes=num_classes, norm_cfg=dict(type="BN"))
    aux = model.auxiliary_head
    aux.update(in_channels=channels[aux.in_index], channels=8, num_classes=num_classes, norm_cfg=dict(type="BN"))
    if model.test_cfg.get("mode") == "slide":  # keep sliding: windows smaller than the image
        model.test_cfg.update(crop_size=(32, 32), stride=(16, 16))  # multiples of the patch (16)
    return model


def seg_batch(n: int = 2, num_classes: int = 5, seed: int = 0) -> dict:
    """mmseg's data-loader output: uint8 images and SegDataSamples with gt_sem_seg (255 = ignore)."""
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, SIZE, SIZE), generator=g, dtype=torch.uint8))
        labels = torch.randint(0, num_classes, (1, SIZE, SIZE), generator=g)
        labels[:, :4] = 255
        sample = SegDataSample(gt_sem_seg=PixelData(data=labels))
        sample.set_metainfo(dict(img_shape=(SIZE, SIZE), ori_shape=(SIZE, SIZE), pad_shape=(SIZE, SIZE)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_mmcv_has_compiled_ops():
    """Full mmcv (not mmcv-lite): its compiled extension loads and a compiled op runs on the CPU."""
    from mmcv.ops import nms
    import mmcv._ext  # noqa: F401

    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


def test_registered_on_import():
    assert MODELS.get("VisionMambaBackbone") is plugin.VisionMambaBackbone
    assert OPTIM_WRAPPER_CONSTRUCTORS.get("TimmLayerDecayOptimWrapperConstructor") is \
        plugin.TimmLayerDecayOptimWrapperConstructor


def test_config_alone_registers_the_backbone():
    """A fresh interpreter that imports nothing of ours: the config's custom_imports register the backbone
    (no "VisionMambaBackbone is not in the mmseg::model registry")."""
    code = ("import sys; from mmengine.config import Config; cfg = Config.fromfile(sys.argv[1]);"
            "from mmseg.registry import MODELS; from mmseg.utils import register_all_modules;"
            "register_all_modules(); print(MODELS.get(cfg.model.backbone.type).__module__)")
    out = subprocess.run([sys.executable, "-c", code, str(CONFIGS[0])], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "vision_mamba.integrations.mmseg"


def test_configs_shipped():
    names = {p.name for p in CONFIGS}
    assert names == {f"upernet_{b}_512x512_ade20k.py" for b in
                     ("vim_small", "vim_small_gcnn", "vmamba_tiny", "vmamba_tiny_gcnn", "mambaout_tiny")}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_heads_match_backbone(path):
    """The full-size backbone's declared channels are what the heads read; ADE20K at 512 x 512; the poly
    schedule ends with training."""
    cfg = load_config(path)
    with torch.device("meta"):  # full size, without allocating its weights
        backbone = MODELS.build(cfg.model.backbone)
    assert backbone.strides == [4, 8, 16, 32]
    assert list(cfg.model.decode_head.in_channels) == backbone.out_channels
    aux = cfg.model.auxiliary_head
    assert aux.in_channels == backbone.out_channels[aux.in_index]
    assert cfg.model.decode_head.num_classes == aux.num_classes == 150
    assert cfg.crop_size == (512, 512) and cfg.model.data_preprocessor.size == (512, 512)
    assert cfg.optim_wrapper.optimizer.type == "AdamW"
    poly = [s for s in cfg.param_scheduler if s.type == "PolyLR"]
    assert len(poly) == 1 and poly[0].end == cfg.train_cfg.max_iters


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_train_step_and_predict(path):
    """Shrunk config -> mmseg's EncoderDecoder (MODELS.build) -> every parameter gets a gradient, one
    train_step through the config's own optimizer wrapper changes the weights, predict gives a
    full-size label map."""
    torch.manual_seed(0)
    cfg = load_config(path)
    model = revert_sync_batchnorm(MODELS.build(shrunk_model_cfg(cfg)))
    assert type(model).__name__ == "EncoderDecoder" and type(model.decode_head).__name__ == "UPerHead"
    model.init_weights()
    model.train()
    data = seg_batch()

    processed = model.data_preprocessor(copy.deepcopy(data), True)
    losses = model(**processed, mode="loss")
    loss, _ = model.parse_losses(losses)
    assert math.isfinite(loss.item())
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without a gradient (DDP would need find_unused_parameters): {no_grad[:5]}"
    model.zero_grad(set_to_none=True)

    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    log_vars = model.train_step(copy.deepcopy(data), optim_wrapper)
    assert math.isfinite(float(log_vars["loss"]))
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith("backbone.") for n in changed) and any(n.startswith("decode_head.") for n in changed)

    model.eval()
    with torch.no_grad():
        preds = model.test_step(copy.deepcopy(data))
    assert len(preds) == 2 and isinstance(preds[0], SegDataSample)
    labels = preds[0].pred_sem_seg.data
    assert labels.shape == (1, SIZE, SIZE) and 0 <= labels.min() and labels.max() < 5
    assert preds[0].seg_logits.data.shape == (5, SIZE, SIZE)
    assert torch.isfinite(preds[0].seg_logits.data).all()


def test_layer_decay_matches_mmseg_beit_rule():
    """Our constructor gives every Vim parameter the lr / weight decay that mmseg's own BEiT layer-decay
    rule (get_layer_id_for_vit) gives the same parameter under BEiT's names; the pyramid and heads
    get the base lr."""
    from mmseg.engine.optimizers.layer_decay_optimizer_constructor import get_layer_id_for_vit

    cfg = load_config(ROOT / "configs/mmseg/upernet_vim_small_512x512_ade20k.py")
    model = revert_sync_batchnorm(MODELS.build(shrunk_model_cfg(cfg)))
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lr, wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    rate = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    depth = SHRINK["vim_"]["depth"]
    num_layers = depth + 2  # mmseg: paramwise num_layers (= depth) + 2
    group_of = {id(p): g for g in wrapper.optimizer.param_groups for p in g["params"]}
    assert sum(len(g["params"]) for g in wrapper.optimizer.param_groups) == \
        sum(1 for p in model.parameters() if p.requires_grad)
    trunk = "backbone.body.body.model."
    seen_layers = set()
    for name, p in model.named_parameters():
        group = group_of[id(p)]
        if name.startswith(trunk):
            beit_name = "backbone." + name[len(trunk):]
            layer_id = get_layer_id_for_vit(beit_name, num_layers)
            seen_layers.add(layer_id)
            expected_lr = lr * rate ** (num_layers - layer_id - 1)
            leaf = name.rsplit(".", 1)[-1]
            no_decay = p.ndim <= 1 or leaf in ("pos_embed", "cls_token", "A_log", "A_b_log", "D", "D_b")
        else:  # the simple pyramid, the decode and auxiliary heads
            expected_lr, no_decay = lr, p.ndim <= 1
        assert group["lr"] == pytest.approx(expected_lr, rel=1e-12), name
        assert group["weight_decay"] == (0.0 if no_decay else wd), name
    assert seen_layers == set(range(num_layers))  # stem, every block, and the final norm


def test_layer_decay_bad_config():
    cfg = load_config(ROOT / "configs/mmseg/upernet_vim_small_512x512_ade20k.py")
    model = revert_sync_batchnorm(MODELS.build(shrunk_model_cfg(cfg)))
    for paramwise, match in ((dict(layer_decay_rate=1.5), "layer_decay_rate=1.5"),
                             (dict(layer_decay_rate=0.9, num_layers=24), "num_layers")):
        bad = copy.deepcopy(cfg.optim_wrapper)
        bad.paramwise_cfg = paramwise
        with pytest.raises(ValueError, match=match):
            build_optim_wrapper(model, bad)
    # a backbone that declares no layers (timm's features_only wrapper of MambaOut) is refused by name
    mambaout = load_config(ROOT / "configs/mmseg/upernet_mambaout_tiny_512x512_ade20k.py")
    plain = revert_sync_batchnorm(MODELS.build(shrunk_model_cfg(mambaout)))
    with pytest.raises(ValueError, match="group_matcher"):
        build_optim_wrapper(plain, cfg.optim_wrapper)


def test_pretrained_checkpoint_loads_and_survives_init_weights(tmp_path):
    """pretrained=<safetensors path> loads through timm (the model's checkpoint filter) and mmengine's
    init_weights (called by the Runner) leaves the loaded weights alone."""
    kwargs = dict(_shrink_kwargs("vim_"))
    kwargs.pop("pyramid_blocks")
    source = timm.create_model("vim_small_patch16_224", **kwargs)
    path = tmp_path / "vim.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))

    cfg = load_config(ROOT / "configs/mmseg/upernet_vim_small_512x512_ade20k.py")
    model_cfg = shrunk_model_cfg(cfg)
    model_cfg.backbone.pretrained = str(path)
    model = MODELS.build(model_cfg)
    model.init_weights()
    trunk = model.backbone.body.body.model
    expected = source.state_dict()
    loaded = trunk.state_dict()
    assert loaded and set(loaded) <= set(expected)
    for key, value in loaded.items():
        assert torch.equal(value, expected[key]), key


def test_backbone_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        plugin.VisionMambaBackbone("vim_tiny_patch16_224", pretrained=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="pretrained=3"):
        plugin.VisionMambaBackbone("vim_tiny_patch16_224", pretrained=3)
    with pytest.raises(ValueError, match="init_cfg"):
        plugin.VisionMambaBackbone("vim_tiny_patch16_224", init_cfg=dict(type="Pretrained", checkpoint="x.pth"))
    with pytest.raises(ValueError, match="vim_tiny_patch16_22"):
        plugin.VisionMambaBackbone("vim_tiny_patch16_22")


@pytest.mark.slow
def test_nuclei_demo_learns(tmp_path):
    """The smoke demo, shortened: mmseg's Runner trains the demo config on the nuclei data set and the
    validation mIoU beats predicting background everywhere."""
    from mmengine.runner import Runner

    from vision_mamba.integrations.mmseg_demo import write_nuclei_seg_dataset
    from vision_mamba.tasks.nuclei_demo import stardist_demo_files

    # stardist is installed without its dependencies (only its data files are read), so it never imports
    try:
        stardist_demo_files()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    summary = write_nuclei_seg_dataset(tmp_path / "data")
    cfg = load_config(ROOT / "configs/mmseg/demo_nuclei_vim_tiny.py")
    iters = 100
    cfg.merge_from_dict({"work_dir": str(tmp_path / "run"),
                         "train_dataloader.dataset.data_root": str(tmp_path / "data"),
                         "val_dataloader.dataset.data_root": str(tmp_path / "data"),
                         "train_cfg.max_iters": iters, "train_cfg.val_interval": iters,
                         "param_scheduler.1.end": iters})
    cfg.test_dataloader = cfg.val_dataloader
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = [json.loads(line) for line in next((tmp_path / "run").rglob("scalars.json")).read_text().splitlines()]
    miou = [s["mIoU"] for s in scalars if "mIoU" in s]
    all_background_miou = 50 * (1 - summary["val"]["nucleus_fraction"])  # IoU 1 - f and 0, in percent
    assert miou and miou[-1] > all_background_miou + 10, (miou, all_background_miou)
