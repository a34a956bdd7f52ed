"""Export (ONNX through onnxruntime, torch.export round trip), torch.compile == eager, the export CLI, and
refusal of .pt2 archives that would unpickle code.  Small models (2 blocks, narrow) so that the traced,
unrolled plain-ops scan stays cheap on the CPU."""
from __future__ import annotations

import json
import zipfile

import pytest
import torch

from vision_mamba import export

onnxruntime = pytest.importorskip("onnxruntime", reason="the [export] extra (onnx, onnxscript, onnxruntime)")
pytest.importorskip("onnxscript", reason="the [export] extra (onnx, onnxscript, onnxruntime)")

# one of each family, shrunk: (name, img_size, build_model kwargs)
FAMILIES = {
    "vim": ("vim_tiny_patch16_224", 32, dict(depth=2, embed_dim=32, d_state=4, num_classes=5)),
    "vmamba": ("vmamba_tiny_s1l8", 32, dict(depths=(1, 1, 1, 1), dims=16, num_classes=5)),
    "twin": ("vim_tiny_gcnn_patch16_224", 32, dict(depth=2, embed_dim=32, num_classes=5)),
    "umamba2d": ("umamba_bot", 32, dict(features_per_stage=(8, 16, 16, 16), num_classes=3)),
}


def small(family: str):
    name, img, kwargs = FAMILIES[family]
    kwargs = dict(kwargs)
    num_classes = kwargs.pop("num_classes")
    torch.manual_seed(0)
    return export.build_model(name, img, num_classes=num_classes, **kwargs), img


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_onnx_runs_in_onnxruntime_at_other_batch_sizes(family, tmp_path):
    """Traced at batch 2, run by onnxruntime at batches 1 and 3 (the batch axis is dynamic): rel. error
    against PyTorch (fp32) below 1e-4."""
    model, img = small(family)
    path = export.export_model(model, export.example_input(model, img), "onnx", tmp_path / f"{family}.onnx")
    inputs = [export.example_input(model, img, b, seed=b) for b in (1, 3)]
    err = export.verify_onnx(path, model, inputs)
    assert err < 1e-4, f"{family}: onnxruntime vs PyTorch rel. error {err:.2e}"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: inputs[1].numpy()})[:1]
    assert out.shape[0] == 3


@pytest.mark.parametrize("family", ["vim", "umamba2d"])
def test_torch_export_round_trip(family, tmp_path):
    """save -> load_exported (checked, no unpickling of code) -> same outputs at another batch size."""
    model, img = small(family)
    path = export.export_model(model, export.example_input(model, img), "torch_export", tmp_path / "m.pt2")
    program = export.load_exported(path)
    x = export.example_input(model, img, 3, seed=7)
    with torch.no_grad():
        want = model(x)
    got = program.module()(x)
    assert export.rel_error(got, want) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_compile_matches_eager(family):
    """torch.compile (inductor, CPU) of every family on the plain-ops scan: same outputs as eager, and no
    graph break in the models' forward (fullgraph=True)."""
    model, img = small(family)
    x = export.example_input(model, img, 2, seed=3)
    with torch.no_grad():
        want = model(x)
        got = torch.compile(model, fullgraph=True)(x)
    assert export.rel_error(got, want) < 1e-4


def test_cli_exports_and_verifies(tmp_path, capsys):
    out = tmp_path / "umamba.pt2"
    assert export.main(["--model", "umamba_bot", "--format", "torch_export", "--img-size", "32",
                        "--num-classes", "3", "--output", str(out), "--verify-batches", "1", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == str(out) and out.is_file()
    assert summary["verified_batches"] == [1, 3] and summary["max_rel_error"] < 1e-5


@pytest.mark.parametrize("args, needle", [
    (["--model", "vim_tiny_patch16_2244", "--format", "onnx"], "did you mean vim_tiny_patch16_224"),
    (["--model", "umamba_bot", "--format", "onnx", "--img-size", "0"], "img_size=0"),
    (["--model", "umamba_bot", "--format", "onnx", "--output", "x.pt2"], "expected a .onnx file"),
])
def test_cli_bad_arguments(args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=needle):
        export.main(args)


def test_pt2_with_pickled_code_is_refused_and_not_run(tmp_path):
    """A .pt2 archive whose weights file is a pickle that would call os.system when unpickled: refused
    by name before torch.export.load reads it, and the command never runs."""
    model, img = small("umamba2d")
    path = export.export_model(model, export.example_input(model, img), "torch_export", tmp_path / "m.pt2")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return os.system, (f"touch {marker}",)

    import pickle
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        names = src.namelist()
        for n in names:
            dst.writestr(n, src.read(n))
        root = names[0].split("/")[0]
        dst.writestr(f"{root}/data/weights/model_weights.pt", pickle.dumps(Evil()))
    with pytest.raises(Exception) as info:
        export.load_exported(bad)
    assert "bad.pt2" in str(info.value) or "weights" in str(info.value)
    assert not marker.exists()
