"""The MONAI medical-segmentation pipeline on tiny synthetic NIfTI volumes (CPU)."""
import csv
import json

import nibabel as nib
import numpy as np
import pytest
import torch

pytest.importorskip("monai")

from vision_mamba.medseg import read_dataset, split_cases  # noqa: E402
from vision_mamba.medseg.cli import infer_main, parse_train_args, train_main  # noqa: E402
from vision_mamba.medseg.engine import build_model  # noqa: E402
from vision_mamba.medseg.infer import predict_volume, write_like  # noqa: E402
from vision_mamba.training.checkpoint import find_latest  # noqa: E402

SHAPE = (24, 24, 20)
# oblique, anisotropic, shifted: a grid that is not RAS-aligned, so orientation changes must be undone
AFFINE = np.array([[0.0, -1.5, 0.0, 30.0],
                   [1.2, 0.0, 0.0, -12.0],
                   [0.0, 0.0, 2.0, 5.0],
                   [0.0, 0.0, 0.0, 1.0]])
TINY = ["--features", "4", "8", "16", "--patch-size", "16", "16", "16", "--d-state", "4",
        "--scan-backend", "torch", "--device", "cpu", "--workers", "0", "--batch-size", "1",
        "--num-samples", "1", "--sw-batch-size", "4"]


def _volume(seed, shape=SHAPE):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    label = np.zeros(shape, np.uint8)
    for value, radius in ((1, 5), (2, 3)):
        centre = rng.uniform(radius + 1, np.array(shape) - radius - 1)
        label[np.linalg.norm(grid - centre, axis=-1) <= radius] = value
    image = (rng.normal(0, 0.2, shape) + label + 1).astype(np.float32)
    return image, label


def _save(array, path, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def make_msd(root, n=3, shape=SHAPE):
    training = []
    for i in range(n):
        image, label = _volume(i, shape)
        _save(image, root / "imagesTr" / f"case_{i:03d}.nii.gz")
        _save(label, root / "labelsTr" / f"case_{i:03d}.nii.gz")
        training.append({"image": f"./imagesTr/case_{i:03d}.nii.gz", "label": f"./labelsTr/case_{i:03d}.nii.gz"})
    meta = {"name": "synthetic", "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "big", "2": "small"},
            "numTraining": n, "training": training, "test": []}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def make_nnunet(root, n=2):
    for i in range(n):
        image, label = _volume(i)
        _save(image, root / "imagesTr" / f"case_{i:03d}_0000.nii.gz")
        _save(label, root / "labelsTr" / f"case_{i:03d}.nii.gz")
    _save(_volume(9)[0], root / "imagesTs" / "test_000_0000.nii.gz")
    meta = {"channel_names": {"0": "T2"}, "labels": {"background": 0, "big": 1, "small": 2},
            "numTraining": n, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_read_msd_and_split(tmp_path):
    ds = read_dataset(make_msd(tmp_path))
    assert ds.labels == {0: "background", 1: "big", 2: "small"} and ds.num_classes == 3 and ds.channels == ["MRI"]
    assert [c["image"] for c in ds.cases] == [str(tmp_path / "imagesTr" / f"case_{i:03d}.nii.gz") for i in range(3)]
    train, val = split_cases(ds.cases, 0.34, seed=1)
    assert len(train) == 2 and len(val) == 1
    assert (train, val) == split_cases(list(reversed(ds.cases)), 0.34, seed=1)  # deterministic, order-free
    assert sorted(c["label"] for c in train + val) == sorted(c["label"] for c in ds.cases)


def test_read_nnunet_v2(tmp_path):
    ds = read_dataset(make_nnunet(tmp_path))
    assert ds.labels == {0: "background", 1: "big", 2: "small"} and ds.channels == ["T2"]
    assert ds.cases[1] == {"image": str(tmp_path / "imagesTr" / "case_001_0000.nii.gz"),
                           "label": str(tmp_path / "labelsTr" / "case_001.nii.gz")}
    assert ds.test_images == [str(tmp_path / "imagesTs" / "test_000_0000.nii.gz")]


@pytest.mark.parametrize("problem", ["shape", "affine", "value", "key"])
def test_bad_dataset_names_the_file(tmp_path, problem):
    root = make_msd(tmp_path)
    bad = root / "labelsTr" / "case_001.nii.gz"
    _, label = _volume(1)
    if problem == "shape":
        _save(label[:, :, :-1], bad)
    elif problem == "affine":
        shifted = AFFINE.copy()
        shifted[0, 3] += 0.01
        _save(label, bad, shifted)
    elif problem == "value":
        label[0, 0, 0] = 7
        _save(label, bad)
    else:
        meta = json.loads((root / "dataset.json").read_text())
        del meta["labels"]
        (root / "dataset.json").write_text(json.dumps(meta))
        bad = root / "dataset.json"
    with pytest.raises(ValueError, match=str(bad).replace("\\", "\\\\")) as info:
        read_dataset(root)
    assert {"shape": "shape", "affine": "affine", "value": "[7]", "key": "'labels'"}[problem] in str(info.value)


def _tiny_model(num_classes=3):
    torch.manual_seed(0)
    return build_model(parse_train_args(TINY), 1, num_classes).eval()


@pytest.mark.parametrize("spacing", [None, (2.0, 1.0, 3.0)])
def test_sliding_window_prediction_keeps_input_grid(tmp_path, spacing):
    # larger than the 16^3 patch on every axis, odd sizes, a grid Orientationd must reorient and
    # (with spacing) Spacingd must resample: Invertd undoes both
    shape = (37, 29, 21)
    image, _ = _volume(3, shape)
    src = _save(image, tmp_path / "in" / "vol.nii.gz")
    pred = predict_volume(_tiny_model(), src, (16, 16, 16), spacing=spacing)
    assert pred.shape == shape and pred.dtype == np.uint8 and set(np.unique(pred)) <= {0, 1, 2}
    out = write_like(pred, src, tmp_path / "out" / "vol.nii.gz")
    written, ref = nib.load(str(out)), nib.load(str(src))
    assert written.shape == ref.shape
    np.testing.assert_allclose(written.affine, ref.affine, atol=1e-6)
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), pred)


@pytest.mark.parametrize("spacing", [None, (1.5, 1.5, 1.5)])
def test_prediction_follows_the_voxels(spacing):
    """Invertd must put each prediction back on its own voxel: a model that copies the input's
    thresholded intensity gives back the thresholded input (exactly in the input's grid, all but the
    block's boundary after resampling)."""
    class Threshold(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return [torch.cat([-x, x], 1)]

    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        image = np.ones((30, 22, 18), np.float32)
        image[3:9, 14:20, 2:5] = 5.0  # one off-centre block: a flipped axis would move it
        src = _save(image, Path(d) / "block.nii.gz")
        pred = predict_volume(Threshold(), src, (16, 16, 16), spacing=spacing)
    expected = (image > 1).astype(np.uint8)
    if spacing is None:
        np.testing.assert_array_equal(pred, expected)
    else:
        assert pred.shape == expected.shape
        assert (pred & expected).sum() / (pred | expected).sum() > 0.6  # IoU: resampling blurs the edges


def test_train_resume_and_infer(tmp_path):
    data = make_msd(tmp_path / "data")
    out = tmp_path / "run"
    args = ["--data", str(data), "--output", str(out), *TINY, "--val-every", "2", "--log-interval", "1"]
    summary = train_main(args + ["--max-steps", "2"])
    first = find_latest(out)
    assert first is not None and first.name == "step-00000002" and summary["steps"] == 2
    assert (first / "model.safetensors").is_file() and (out / "preview.png").is_file()
    with open(out / "train.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2]
    with open(out / "val.csv") as f:
        row = next(csv.DictReader(f))
    assert {"mean_dice", "dice_big", "dice_small"} <= set(row)

    summary = train_main(args + ["--max-steps", "3", "--resume", "auto"])
    assert summary["steps"] == 3 and find_latest(out).name == "step-00000003"
    with open(out / "train.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3]  # continued, not restarted

    image = data / "imagesTr" / "case_000.nii.gz"
    results = infer_main(["--checkpoint", str(find_latest(out)), "--input", str(image),
                          "--output", str(tmp_path / "pred"), "--label", str(data / "labelsTr" / "case_000.nii.gz"),
                          *TINY])
    written = nib.load(results["predictions"][0])
    assert written.shape == SHAPE
    np.testing.assert_allclose(written.affine, AFFINE, atol=1e-6)
    assert set(results["dice"]) == {"big", "small"}


def test_dice_per_class_known_values():
    # class 1: 2 of 3 predicted voxels on 2 of 2 labelled -> 2*2 / (3+2) = 0.8; class 2: disjoint -> 0;
    # class 3 in neither -> NaN (ignored, not counted as a perfect or a failed class)
    from vision_mamba.medseg.engine import dice_per_class
    pred = torch.tensor([1, 1, 1, 2, 0, 0]).view(1, 1, 1, 2, 3)
    label = torch.tensor([1, 1, 0, 0, 2, 0]).view(1, 1, 1, 2, 3)
    dice = dice_per_class(pred, label, num_classes=4)
    np.testing.assert_allclose(dice[:2], [0.8, 0.0], atol=1e-6)
    assert np.isnan(dice[2])


def test_explicit_validation_cases(tmp_path):
    ds = read_dataset(make_msd(tmp_path / "data"))
    train, val = split_cases(ds.cases, val_cases=["case_001"])
    assert [c["label"].rsplit("/", 1)[-1] for c in val] == ["case_001.nii.gz"]
    assert len(train) == 2 and all("case_001" not in c["label"] for c in train)
    with pytest.raises(ValueError, match=r"val_cases \['nope'\]: no such case"):
        split_cases(ds.cases, val_cases=["nope"])
    with pytest.raises(ValueError, match="none left to train on"):
        split_cases(ds.cases, val_cases=["case_000", "case_001", "case_002"])


def test_2d_slice_training_and_inference(tmp_path):
    # a 2-D U-Mamba trained on axial slices, validated and applied slice by slice to whole volumes
    data = make_msd(tmp_path / "data")
    out = tmp_path / "run2d"
    args = ["--data", str(data), "--output", str(out), *TINY, "--spatial-dims", "2", "--patch-size", "16", "16",
            "--val-every", "2", "--max-steps", "2", "--val-cases", "case_002"]
    summary = train_main(args)
    assert summary["steps"] == 2 and 0.0 <= summary["metrics"]["mean_dice"] <= 1.0
    results = infer_main(["--checkpoint", summary["checkpoint"], "--input", str(data / "imagesTr" / "case_002.nii.gz"),
                          "--output", str(tmp_path / "pred2d"), *TINY, "--spatial-dims", "2", "--patch-size", "16", "16"])
    written = nib.load(results["predictions"][0])
    assert written.shape == SHAPE
    np.testing.assert_allclose(written.affine, AFFINE, atol=1e-6)


def test_slice_predictor_runs_the_2d_model_per_slice():
    # the sliding-window path for 2-D models equals applying the model to each axial slice on its own
    from vision_mamba.medseg.engine import sliding_window_predict
    from vision_mamba.models.umamba import umamba_bot
    torch.manual_seed(0)
    model = umamba_bot(2, 1, 3, features_per_stage=(4, 8), strides=(1, 2), n_conv_per_stage=1,
                       n_conv_per_stage_decoder=1, deep_supervision=True, scan_backend="torch").eval()
    volume = torch.randn(1, 1, 16, 12, 5)
    logits = sliding_window_predict(model, volume, (16, 12), sw_batch_size=3)
    with torch.no_grad():
        expected = torch.stack([model(volume[..., z])[0] for z in range(5)], -1)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-5)


def test_demo_dataset_halves_are_disjoint_and_keep_world_positions(tmp_path):
    from vision_mamba.medseg.demo import LABELS, make_demo, merge_aal
    # small stand-ins for Colin27 / AAL on mricron's RAS 1 mm grid (x = i - 20)
    shape, affine = (41, 30, 24), np.array([[1.0, 0, 0, -20], [0, 1, 0, -15], [0, 0, 1, -12], [0, 0, 0, 1]])
    rng = np.random.default_rng(0)
    aal = np.zeros(shape, np.uint8)
    aal[3:38, 4:26, 4:20] = rng.integers(1, 117, size=(35, 22, 16))
    t1 = rng.integers(0, 255, size=shape).astype(np.uint8)
    templates = tmp_path / "templates"
    _save(t1, templates / "ch2.nii.gz", affine)
    _save(aal, templates / "aal.nii.gz", affine)
    summary = make_demo(tmp_path / "demo", templates, spacing=1.0, gap_mm=4.0, margin_mm=1.0)
    ds = read_dataset(tmp_path / "demo")
    assert ds.labels == LABELS and len(ds.cases) == 2
    left, right = (summary["cases"][c]["world_x_mm"] for c in ("colin27_left", "colin27_right"))
    assert left[1] < 0 < right[0] and right[0] - left[1] >= 4.0      # a band around x = 0 in neither half
    merged = merge_aal(aal)
    assert set(np.unique(merged)) <= {0, 1, 2, 3} and (merged[aal == 75] == 2).all() and (merged[aal == 100] == 3).all()
    for case in ds.cases:                       # every voxel kept its world position and its label
        img, lab = nib.load(case["image"]), nib.load(case["label"])
        np.testing.assert_allclose(img.affine, lab.affine)
        ijk = np.argwhere(np.ones(lab.shape, bool))[::97]
        world = nib.affines.apply_affine(lab.affine, ijk)
        src = np.round(nib.affines.apply_affine(np.linalg.inv(affine), world)).astype(int)
        np.testing.assert_array_equal(np.asarray(lab.dataobj)[tuple(ijk.T)], merged[tuple(src.T)])
        np.testing.assert_allclose(np.asarray(img.dataobj)[tuple(ijk.T)], t1[tuple(src.T)], atol=1e-3)
