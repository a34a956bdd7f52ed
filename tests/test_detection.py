"""The feature interface (vision_mamba.tasks.features), the torchvision detectors on it, COCO reading /
evaluation, the detection CLI and the nuclei demo's tiling.  CPU, small shapes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vision_mamba.tasks import create_feature_backbone
from vision_mamba.tasks.detection import build_detector

# tiny widths / depths so that every backbone builds and runs in well under a second
VIM = ("vim_tiny_patch16_224", dict(depth=2, embed_dim=32, d_state=4))
VIM_TWIN = ("vim_tiny_gcnn_patch16_224", dict(depth=2, embed_dim=32))
VMAMBA = ("vmamba_tiny_s1l8", dict(depths=(1, 1, 1, 1), dims=16))
VMAMBA_TWIN = ("vmamba_tiny_gcnn", dict(depths=(1, 1, 1, 1), dims=16))
MAMBAOUT = ("mambaout_femto", dict(depths=(1, 1, 1, 1), dims=(16, 24, 32, 48)))
CONVNEXT = ("convnext_atto", dict(depths=(1, 1, 1, 1), dims=(8, 16, 24, 32)))
RESNET = ("resnet10t", {})

# (backbone, expected out_channels): written out here rather than read from the model, so that a
# wrong declaration fails
FEATURE_CASES = {
    "vim": (VIM, [8, 16, 32, 32]),                   # pyramid: C/4, C/2, C, C
    "vim_twin": (VIM_TWIN, [8, 16, 32, 32]),
    "vmamba": (VMAMBA, [16, 32, 64, 128]),
    "vmamba_twin": (VMAMBA_TWIN, [16, 32, 64, 128]),
    "mambaout": (MAMBAOUT, [16, 24, 32, 48]),        # timm's wrapper emits NHWC: converted
    "convnext": (CONVNEXT, [8, 16, 24, 32]),
    "resnet": (RESNET, [64, 128, 256, 512]),         # 5 declared levels: the stride-2 one is left out
}


@pytest.mark.parametrize("case", list(FEATURE_CASES))
def test_feature_maps_match_declared_channels_and_strides(case):
    (name, kwargs), channels = FEATURE_CASES[case]
    torch.manual_seed(0)
    backbone = create_feature_backbone(name, **kwargs).eval()
    assert backbone.out_channels == channels
    assert backbone.strides == [4, 8, 16, 32]
    x = torch.randn(2, 3, 64, 96)
    maps = backbone(x)
    assert [tuple(m.shape) for m in maps] == [(2, c, 64 // s, 96 // s) for c, s in zip(channels, backbone.strides)]
    assert all(torch.isfinite(m).all() for m in maps)
    sum(m.float().square().mean() for m in maps).backward()
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)


@pytest.mark.parametrize("case", ["vmamba", "resnet", "vim"])
def test_out_indices_select_levels(case):
    (name, kwargs), channels = FEATURE_CASES[case]
    first = 1 if case == "resnet" else 0  # resnet's level 0 is its stride-2 stem
    backbone = create_feature_backbone(name, out_indices=[first + 1, -1], **kwargs)
    assert backbone.out_channels == [channels[1], channels[3]] and backbone.strides == [8, 32]
    maps = backbone(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps] == [(channels[1], 8, 8), (channels[3], 2, 2)]


def _vim_tokens_as_map(model, x):
    """Reference: the final normalised tokens of Vim's own forward_features, class token (in the
    middle of the sequence) removed, laid out on the patch grid."""
    tokens = model.forward_features(x)
    h, w = x.shape[2] // 16, x.shape[3] // 16
    cls = (h * w) // 2
    patches = torch.cat([tokens[:, :cls], tokens[:, cls + 1:]], dim=1)
    return patches.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2)


def test_vim_simple_pyramid_reads_the_last_blocks_patch_tokens():
    name, kwargs = VIM
    torch.manual_seed(0)
    backbone = create_feature_backbone(name, **kwargs).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        maps = backbone(x)
        reference = _vim_tokens_as_map(backbone.body.model, x)
    torch.testing.assert_close(maps[2], reference, rtol=1e-5, atol=1e-5)          # identity, stride 16
    torch.testing.assert_close(maps[3], F.max_pool2d(reference, 2), rtol=1e-5, atol=1e-5)  # stride 32
    assert isinstance(backbone.pyramid.levels[0][0], torch.nn.ConvTranspose2d)     # stride 4: 2 deconvs
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in backbone.pyramid.levels[0]) == 2
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in backbone.pyramid.levels[1]) == 1


def test_vim_pyramid_from_one_block_per_level():
    name, kwargs = VIM
    torch.manual_seed(0)
    backbone = create_feature_backbone(name, out_indices=[1, 2], pyramid_blocks=[0, 1], **kwargs).eval()
    assert backbone.strides == [8, 16] and backbone.out_channels == [16, 32]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = backbone(x)
        block0, block1 = backbone.body.model.forward_intermediates(x, indices=[0, 1], norm=True,
                                                                    intermediates_only=True)
    torch.testing.assert_close(maps[1], block1)
    torch.testing.assert_close(maps[0], backbone.pyramid.levels[0](block0))
    assert not torch.allclose(block0, block1)


def test_feature_interface_rejects_bad_input():
    with pytest.raises(ValueError, match=r"name='vim_tiny_patch16_22' is not a registered timm model; did you mean"):
        create_feature_backbone("vim_tiny_patch16_22")
    name, kwargs = VMAMBA
    for bad, message in ((3, "expected a non-empty sequence"), ([], "expected a non-empty sequence"),
                         ([0, 4], r"\[4\] out of range for the 4 feature levels"),
                         ([2, 1], "distinct and increasing"), ([0, 0], "distinct and increasing"),
                         ([0, "1"], "sequence of ints")):
        with pytest.raises(ValueError, match=message):
            create_feature_backbone(name, out_indices=bad, **kwargs)
    with pytest.raises(ValueError, match="pyramid_blocks=1 is for plain"):
        create_feature_backbone(name, pyramid_blocks=1, **kwargs)
    with pytest.raises(ValueError, match="features_only=True is set by the feature interface"):
        create_feature_backbone(name, features_only=True, **kwargs)
    with pytest.raises(ValueError, match="does not accept these arguments"):
        create_feature_backbone(name, depthz=3)
    vim, vim_kwargs = VIM
    with pytest.raises(ValueError, match=r"out of range for the 4 pyramid levels"):
        create_feature_backbone(vim, out_indices=[0, 4], **vim_kwargs)
    with pytest.raises(ValueError, match=r"pyramid_blocks=5, .*has 2 blocks"):
        create_feature_backbone(vim, pyramid_blocks=5, **vim_kwargs)
    with pytest.raises(ValueError, match=r"one per selected level \(4\)"):
        create_feature_backbone(vim, pyramid_blocks=[0, 1], **vim_kwargs)


# ------------------------------------------------------------------------------------------------
# detectors
# ------------------------------------------------------------------------------------------------
SMALL_HEADS = dict(fpn_channels=32, box_head_dim=64, mask_head_channels=16, min_size=96, max_size=96,
                   detector_kwargs=dict(rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
                                        rpn_pre_nms_top_n_test=100, rpn_post_nms_top_n_test=50,
                                        rpn_batch_size_per_image=64, box_batch_size_per_image=64))


def _fixed_batch(n_images=2, size=96, seed=1):
    """Bright rectangles (classes 1 and 2) on dark noise, with their boxes and masks."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(n_images):
        image = torch.rand(3, size, size, generator=g) * 0.2
        boxes, masks = [], []
        for _ in range(3):
            x0, y0 = torch.randint(0, size - 36, (2,), generator=g).tolist()
            w, h = torch.randint(14, 36, (2,), generator=g).tolist()
            image[:, y0:y0 + h, x0:x0 + w] += 0.7
            boxes.append([x0, y0, x0 + w, y0 + h])
            mask = torch.zeros(size, size, dtype=torch.uint8)
            mask[y0:y0 + h, x0:x0 + w] = 1
            masks.append(mask)
        images.append(image.clamp(0, 1))
        targets.append(dict(boxes=torch.tensor(boxes, dtype=torch.float32), labels=torch.tensor([1, 2, 1]),
                            masks=torch.stack(masks)))
    return images, targets


@pytest.mark.parametrize("arch", ["faster_rcnn", "mask_rcnn"])
@pytest.mark.parametrize("backbone", ["vim", "vmamba", "mambaout"])
def test_detector_trains_on_a_fixed_batch_and_predicts(backbone, arch):
    name, kwargs = {"vim": VIM, "vmamba": VMAMBA, "mambaout": MAMBAOUT}[backbone]
    torch.manual_seed(0)
    model = build_detector(name, arch, num_classes=2, **SMALL_HEADS, **kwargs)
    images, targets = _fixed_batch()
    if arch == "faster_rcnn":
        targets = [{k: v for k, v in t.items() if k != "masks"} for t in targets]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    history = []
    for _ in range(8):
        torch.manual_seed(0)  # the same anchor / proposal sampling draws every step
        losses = model(images, targets)
        expected = {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}
        assert set(losses) == expected | ({"loss_mask"} if arch == "mask_rcnn" else set())
        loss = sum(losses.values())
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append({k: v.item() for k, v in losses.items()} | {"total": loss.item()})
    # the RPN's losses are on fixed anchors: they must fall; the total (whose RoI terms see the
    # moving proposals) must end below where it started
    first, last = history[0], history[-1]
    assert last["loss_objectness"] < 0.97 * first["loss_objectness"], history
    assert last["total"] < first["total"], history

    model.eval()
    with torch.no_grad():
        predictions = model(images)
    assert len(predictions) == len(images)
    for p in predictions:
        n = len(p["boxes"])
        assert p["boxes"].shape == (n, 4) and p["boxes"].dtype == torch.float32
        assert p["scores"].shape == (n,) and p["labels"].shape == (n,) and p["labels"].dtype == torch.int64
        assert ((p["labels"] >= 1) & (p["labels"] <= 2)).all()
        assert (p["boxes"] >= 0).all() and (p["boxes"] <= 96).all()
        assert (p["boxes"][:, 2:] >= p["boxes"][:, :2]).all()
        if arch == "mask_rcnn":
            assert p["masks"].shape == (n, 1, 96, 96)
        else:
            assert "masks" not in p


def test_detector_levels_follow_the_backbone():
    name, kwargs = VMAMBA
    model = build_detector(name, "faster_rcnn", 3, out_indices=[1, 2, 3], **SMALL_HEADS, **kwargs)
    assert model.backbone.strides == [8, 16, 32, 64]
    assert model.rpn.anchor_generator.sizes == ((64,), (128,), (256,), (512,))
    assert model.roi_heads.box_roi_pool.featmap_names == ["0", "1", "2"]
    assert model.roi_heads.box_predictor.cls_score.out_features == 4  # 3 classes + background
    features = model.backbone(torch.randn(1, 3, 64, 64))
    assert list(features) == ["0", "1", "2", "pool"]
    assert all(f.shape[1] == 32 for f in features.values())


def test_detector_rejects_bad_input():
    name, kwargs = VMAMBA
    with pytest.raises(ValueError, match=r"arch='retinanet', expected one of \['faster_rcnn', 'mask_rcnn'\]"):
        build_detector(name, "retinanet", 2, **kwargs)
    for bad in (0, -1, 2.5, True, "2"):
        with pytest.raises(ValueError, match=f"num_classes={bad!r}, expected a positive int"):
            build_detector(name, "faster_rcnn", bad, **kwargs)
    with pytest.raises(ValueError, match="is not a registered timm model"):
        build_detector("vmamba_tiny_nope", "faster_rcnn", 2)
    with pytest.raises(ValueError, match=r"anchor_sizes=\[32, 64\], expected 5 positive sizes"):
        build_detector(name, "faster_rcnn", 2, anchor_sizes=[32, 64], **kwargs)
    with pytest.raises(ValueError, match=r"detector_kwargs \['min_size'\] are set by build_detector"):
        build_detector(name, "faster_rcnn", 2, detector_kwargs=dict(min_size=10), **kwargs)


# ------------------------------------------------------------------------------------------------
# COCO data and evaluation
# ------------------------------------------------------------------------------------------------
from pycocotools import mask as mask_utils  # noqa: E402  (the [det] extra, in [dev])

from vision_mamba.tasks import coco  # noqa: E402


def _write_coco(root: Path, size: int = 64) -> Path:
    """3 images: two polygons (categories 7 and 3); an uncompressed-RLE object plus a crowd region;
    no object at all."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in (1, 2, 3):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
    square = np.zeros((size, size), np.uint8)
    square[30:50, 10:40] = 1
    rle = mask_utils.encode(np.asfortranarray(square))
    uncompressed = {"size": [size, size], "counts": _uncompressed_counts(square)}
    crowd = {"size": [size, size], "counts": rle["counts"].decode()}
    anns = [
        dict(id=1, image_id=1, category_id=7, iscrowd=0, bbox=[4, 6, 20, 10], area=200,
             segmentation=[[4, 6, 24, 6, 24, 16, 4, 16]]),
        dict(id=2, image_id=1, category_id=3, iscrowd=0, bbox=[30, 30, 20, 20], area=200,
             segmentation=[[30, 30, 50, 30, 30, 50]]),
        dict(id=3, image_id=2, category_id=7, iscrowd=0, bbox=[10, 30, 30, 20], area=600, segmentation=uncompressed),
        dict(id=4, image_id=2, category_id=3, iscrowd=1, bbox=[0, 0, 8, 8], area=64, segmentation=crowd),
    ]
    data = dict(images=[dict(id=i, file_name=f"{i}.png", width=size, height=size) for i in (1, 2, 3)],
                annotations=anns, categories=[dict(id=3, name="three"), dict(id=7, name="seven")])
    (root / "ann.json").write_text(json.dumps(data))
    return root / "ann.json"


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE: run lengths of the column-major flattened mask, starting with zeros."""
    flat = mask.flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v == current:
            run += 1
        else:
            counts.append(run)
            current, run = v, 1
    counts.append(run)
    return counts


def test_coco_dataset_targets(tmp_path):
    ann = _write_coco(tmp_path)
    ds = coco.CocoDetectionDataset(tmp_path / "images", ann, masks=True)
    assert len(ds) == 3 and ds.num_classes == 2 and ds.cat_ids == [3, 7] and ds.class_names == ["three", "seven"]
    image, t = ds[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    torch.testing.assert_close(t["boxes"], torch.tensor([[4., 6., 24., 16.], [30., 30., 50., 50.]]))
    assert t["labels"].tolist() == [2, 1] and t["image_id"] == 1                # category 7 -> 2, 3 -> 1
    assert t["masks"].shape == (2, 64, 64) and t["masks"].dtype == torch.uint8
    assert abs(int(t["masks"][0].sum()) - 200) <= 30                              # the 20x10 polygon
    image, t = ds[1]
    assert t["labels"].tolist() == [2] and t["boxes"].tolist() == [[10., 30., 40., 50.]]  # crowd dropped
    assert int(t["masks"][0].sum()) == 600
    image, t = ds[2]
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,) and t["masks"].shape == (0, 64, 64)
    flipped = coco.CocoDetectionDataset(tmp_path / "images", ann, masks=True, hflip=1.0)
    f_image, f_t = flipped[0]
    torch.testing.assert_close(f_image, ds[0][0].flip(-1))
    torch.testing.assert_close(f_t["boxes"], torch.tensor([[40., 6., 60., 16.], [14., 30., 34., 50.]]))
    torch.testing.assert_close(f_t["masks"], ds[0][1]["masks"].flip(-1))


def _predictions_from_targets(ds, shift: float = 0.0, wrong_label: bool = False):
    out = []
    for i in range(len(ds)):
        _, t = ds[i]
        boxes = t["boxes"].clone()
        boxes[:, [0, 2]] += shift * (boxes[:, 2] - boxes[:, 0])[:, None]
        labels = 3 - t["labels"] if wrong_label else t["labels"]
        out.append((t["image_id"], dict(boxes=boxes, labels=labels, scores=torch.ones(len(boxes)),
                                        masks=t["masks"][:, None].float())))
    return out


def test_coco_eval_scores_known_predictions(tmp_path):
    ds = coco.CocoDetectionDataset(tmp_path / "images", _write_coco(tmp_path), masks=True)

    def score(**kwargs):
        results = []
        for image_id, p in _predictions_from_targets(ds, **kwargs):
            results += coco.to_coco_results(p, image_id, ds.cat_ids, masks=True)
        return coco.coco_eval(ds.coco, results, ds.image_ids, ("bbox", "segm"))

    perfect = score()
    assert perfect["bbox_AP"] == pytest.approx(1.0) and perfect["segm_AP"] == pytest.approx(1.0)
    shifted = score(shift=0.4)  # IoU 0.6/1.4 = 0.43: below every COCO threshold
    assert shifted["bbox_AP50"] == pytest.approx(0.0)
    slightly = score(shift=0.1)  # IoU 0.9/1.1 = 0.82: counts at 0.5 .. 0.8, not above
    assert slightly["bbox_AP50"] == pytest.approx(1.0) and 0.5 < slightly["bbox_AP"] < 0.8
    assert score(wrong_label=True)["bbox_AP"] == pytest.approx(0.0)
    empty = coco.coco_eval(ds.coco, [], ds.image_ids, ("bbox",))
    assert empty["bbox_AP"] == 0.0
    with pytest.raises(ValueError, match="iou_types=\\['keypoints'\\]"):
        coco.coco_eval(ds.coco, [], ds.image_ids, ("keypoints",))


def test_coco_dataset_rejects_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="COCO annotations .*no such file"):
        coco.CocoDetectionDataset(tmp_path, tmp_path / "missing.json")
    ann = _write_coco(tmp_path)
    with pytest.raises(FileNotFoundError, match="COCO images folder"):
        coco.CocoDetectionDataset(tmp_path / "nope", ann)
    with pytest.raises(ValueError, match="hflip=2"):
        coco.CocoDetectionDataset(tmp_path / "images", ann, hflip=2)


# ------------------------------------------------------------------------------------------------
# the command line: train, checkpoint, resume, evaluate; the shipped recipes
# ------------------------------------------------------------------------------------------------
def _cli_args(tmp_path, ann, arch="mask_rcnn", steps=2):
    name, kwargs = VMAMBA
    return ["--train-images", str(tmp_path / "images"), "--train-ann", str(ann), "--model", name,
            "--model-kwargs", json.dumps(kwargs), "--arch", arch, "--fpn-channels", "16", "--box-head-dim", "32",
            "--mask-head-channels", "8", "--min-size", "64", "--max-size", "64", "--batch-size", "2",
            "--max-steps", str(steps), "--eval-every", "1", "--workers", "0", "--lr", "1e-3",
            "--warmup-steps", "1", "--log-interval", "1", "--output", str(tmp_path / "run")]


def test_cli_trains_checkpoints_resumes_and_evaluates(tmp_path, capsys):
    from vision_mamba.tasks import det_cli

    ann = _write_coco(tmp_path)
    summary = det_cli.train_main(_cli_args(tmp_path, ann, steps=2))
    assert summary["steps"] == 2 and set(summary["metrics"]) >= {"bbox_AP", "bbox_AP50", "segm_AP"}
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000001", "step-00000002"]
    summary = det_cli.train_main(_cli_args(tmp_path, ann, steps=3) + ["--resume", "auto"])
    assert summary["steps"] == 3 and summary["checkpoint"].endswith("step-00000003")
    steps = [int(line.split(",")[0]) for line in (run / "train.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3]
    metrics = det_cli.eval_main(_cli_args(tmp_path, ann) + ["--checkpoint", summary["checkpoint"],
                                                           "--json", str(tmp_path / "m.json")])
    assert metrics["step"] == 3 and metrics["images"] == 3 and "segm_AP50" in metrics
    assert json.loads((tmp_path / "m.json").read_text())["bbox_AP"] == metrics["bbox_AP"]
    with pytest.raises(ValueError, match="trained with arch='mask_rcnn', the config says 'faster_rcnn'"):
        det_cli.eval_main(_cli_args(tmp_path, ann, arch="faster_rcnn") + ["--checkpoint", summary["checkpoint"]])


@pytest.mark.parametrize("config", sorted(Path(__file__).parents[1].glob("configs/det/*.yaml")), ids=lambda p: p.name)
def test_shipped_detection_configs_parse(config):
    from vision_mamba.tasks.det_cli import build_train_parser
    from vision_mamba.training.cli import parse_with_config

    cfg = parse_with_config(build_train_parser(), ["--config", str(config)])
    assert cfg.arch in ("faster_rcnn", "mask_rcnn") and cfg.train_ann and cfg.train_images
    if cfg.anchor_sizes is not None:
        assert len(cfg.anchor_sizes) == len(cfg.out_indices or [0, 1, 2, 3]) + 1


# ------------------------------------------------------------------------------------------------
# the nuclei demo's tiles
# ------------------------------------------------------------------------------------------------
def test_instance_annotations_boxes_areas_masks():
    from vision_mamba.tasks.nuclei_demo import instance_annotations

    labels = np.zeros((20, 30), np.uint16)
    labels[2:7, 3:11] = 5          # 5 x 8
    labels[10:19, 20:22] = 9       # 9 x 2
    labels[0, 29] = 4              # 1 pixel: under min_area
    anns = instance_annotations(labels, image_id=7, first_id=100, min_area=4)
    assert [a["id"] for a in anns] == [100, 101] and all(a["image_id"] == 7 for a in anns)
    assert anns[0]["bbox"] == [3.0, 2.0, 8.0, 5.0] and anns[0]["area"] == 40.0
    assert anns[1]["bbox"] == [20.0, 10.0, 2.0, 9.0] and anns[1]["area"] == 18.0
    decoded = mask_utils.decode({"size": anns[1]["segmentation"]["size"],
                                 "counts": anns[1]["segmentation"]["counts"].encode()})
    np.testing.assert_array_equal(decoded, (labels == 9).astype(np.uint8))
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\), expected \(H, W\)"):
        instance_annotations(np.zeros((2, 3, 4)), 1, 1)


def test_make_nuclei_tiles_splits_without_shared_pixels(tmp_path):
    import tifffile

    from vision_mamba.tasks.nuclei_demo import make_nuclei_tiles

    rng = np.random.default_rng(0)
    image = rng.integers(0, 4000, (64, 64)).astype(np.uint16)
    labels = np.zeros((64, 64), np.uint16)
    for k, (y, x) in enumerate([(2, 2), (20, 40), (40, 10), (50, 50), (28, 28)], start=1):
        labels[y:y + 8, x:x + 8] = k   # the last one straddles all four 32 px tiles
    tifffile.imwrite(tmp_path / "img.tif", image)
    tifffile.imwrite(tmp_path / "mask.tif", labels)
    summary = make_nuclei_tiles(tmp_path / "out", tile=32, val_columns=1, min_area=4,
                                files=(tmp_path / "img.tif", tmp_path / "mask.tif"))
    assert summary["train"]["images"] == 2 and summary["val"]["images"] == 2
    train = json.loads((tmp_path / "out" / "train.json").read_text())
    val = json.loads((tmp_path / "out" / "val.json").read_text())
    assert all(im["file_name"].endswith(("_x000.png",)) for im in train["images"])
    assert all(im["file_name"].endswith("_x032.png") for im in val["images"])
    # left column: 1, 3 and two quarters of 5 (16 px each); right column: 2, 4 and the other two
    assert len(train["annotations"]) == 4 and len(val["annotations"]) == 4
    ids = [a["id"] for a in train["annotations"] + val["annotations"]]
    assert len(set(ids)) == len(ids)
    tile = np.array(Image.open(tmp_path / "out" / "images" / train["images"][0]["file_name"]))
    assert tile.shape == (32, 32) and tile.dtype == np.uint8 and tile.max() > 200
    ds = coco.CocoDetectionDataset(tmp_path / "out" / "images", tmp_path / "out" / "train.json", masks=True)
    assert ds.num_classes == 1 and len(ds) == 2
    with pytest.raises(ValueError, match="val_columns=2, expected 0..1"):
        make_nuclei_tiles(tmp_path / "out2", tile=32, val_columns=2, files=(tmp_path / "img.tif", tmp_path / "mask.tif"))


def test_stardist_demo_files_are_read_when_installed(tmp_path):
    from vision_mamba.tasks.nuclei_demo import INSTALL_HINT, make_nuclei_tiles, stardist_demo_files

    try:
        stardist_demo_files()
    except FileNotFoundError as e:
        assert INSTALL_HINT in str(e)
        pytest.skip(f"stardist's sample image is not installed ({INSTALL_HINT})")
    summary = make_nuclei_tiles(tmp_path, tile=128)
    assert summary["train"]["images"] == 12 and summary["val"]["images"] == 4
    assert summary["train"]["instances"] + summary["val"]["instances"] >= 125  # 125 nuclei, some cut in two


def test_annotation_mask_decodes_polygons_and_both_rle_forms():
    """One square as a polygon, as uncompressed RLE (counts a list) and as compressed RLE (counts a str,
    as JSON stores it): the same mask.  torchvision's wrapper failed on the compressed form."""
    h, w = 12, 10
    square = np.zeros((h, w), np.uint8)
    square[2:7, 3:9] = 1
    compressed = mask_utils.encode(np.asfortranarray(square))
    counts, run, value = [], 0, 0
    for pixel in square.flatten(order="F"):   # column-major runs, starting with zeros
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            run, value = 1, pixel
    counts.append(run)
    forms = {"polygon": [[3, 2, 9, 2, 9, 7, 3, 7]],
             "uncompressed": {"size": [h, w], "counts": counts},
             "compressed": {"size": [h, w], "counts": compressed["counts"].decode("ascii")}}
    for name, seg in forms.items():
        got = coco.annotation_mask(seg, h, w)
        assert got.dtype == np.uint8 and got.shape == (h, w), name
        assert np.array_equal(got, square), name
    with pytest.raises(ValueError, match="expected polygons"):
        coco.annotation_mask({"size": [h, w]}, h, w)
