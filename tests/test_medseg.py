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
