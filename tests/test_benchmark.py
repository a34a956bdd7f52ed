"""The model benchmark: the command line end to end on CPU with two tiny-resolution models, and a model
that cannot run at a resolution recorded as skipped instead of stopping the run."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vision_mamba.bench import speed

ROOT = Path(__file__).resolve().parents[1]


def test_cli_writes_table_json_csv_and_plots(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "benchmark.py"), "--device", "cpu", "--dtype", "fp32",
         "--models", "vim_tiny_patch16_224", "vit_tiny_patch16_224", "--res", "32", "64", "--batch", "1",
         "--repeats", "2", "--warmup", "1", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    assert "vit_tiny_patch16_224[eager]" in proc.stdout
    data = json.loads((out / "benchmark.json").read_text())
    assert {"date", "command", "device_name", "torch", "timm", "threads", "memory_method"} <= set(data["metadata"])
    assert data["metadata"]["inductor_layout_optimization"] is None      # recorded for compiled runs only
    rows = data["results"]
    assert {(r["label"], r["res"]) for r in rows} == {
        (label, res) for label in ("vim_tiny_patch16_224", "vit_tiny_patch16_224[sdpa]",
                                   "vit_tiny_patch16_224[eager]") for res in (32, 64)}
    for r in rows:
        assert r["status"] == "ok", r
        assert r["latency_ms"] > 0 and r["images_per_s"] > 0
        assert r["peak_mem_mb"] is not None and r["peak_mem_mb"] >= 0
        assert r["params_m"] > 1
        assert len(r["times_ms"]) == 2
    vim = [r for r in rows if r["model"] == "vim_tiny_patch16_224"]
    assert all(r["gflops"] > 0 for r in vim)          # Vim counts at any size
    with open(out / "benchmark.csv") as f:
        assert len(list(csv.DictReader(f))) == len(rows)
    for png in ("memory.png", "throughput.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_that_cannot_run_at_a_resolution_is_skipped(tmp_path):
    # a 16 px patch embedding cannot take an 8 px image: skipped with the reason, and the next size runs
    rows = speed.run_benchmark(["vit_tiny_patch16_224"], [8, 32], batch=1, mode="train", dtype="fp32",
                               device="cpu", attns=["sdpa"], repeats=1, warmup=0, progress=False)
    by_res = {r["res"]: r for r in rows}
    assert by_res[8]["status"] == "skipped"
    assert "Kernel size" in by_res[8]["reason"] and by_res[8]["latency_ms"] is None
    assert by_res[32]["status"] == "ok" and by_res[32]["mode"] == "train"
    assert by_res[32]["label"] == "vit_tiny_patch16_224[sdpa]"
    paths = speed.write_outputs(rows, {"device_name": "cpu"}, tmp_path)   # plots mark the skipped point
    assert all(p.exists() for p in paths)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model.*no_such_model"):
        speed.validate(["no_such_model"], [32], 1, "infer", "fp32", ["sdpa"], "cpu", 1, 0)


def test_cli_rejects_unknown_model():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "benchmark.py"), "--device", "cpu",
                           "--models", "no_such_model"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no_such_model" in proc.stderr


def test_cuda_graphs_option_is_validated():
    """--cuda-graphs is an inference-on-CUDA option: asked for elsewhere it is a clear error."""
    from vision_mamba.bench import speed
    with pytest.raises(ValueError, match="cuda_graphs needs device 'cuda' and mode 'infer'"):
        speed.validate(["vim_tiny_patch16_224"], [64], 1, "infer", "fp32", ["sdpa"], "cpu", 1, 0, cuda_graphs=True)
    assert speed._label("vim_small_patch16_224", None, True) == "vim_small_patch16_224+graphs"


def test_channels_last_runs_model_and_input_channels_last(monkeypatch):
    """--channels-last: the model's 4-D weights and the batch it is fed are channels-last, the row says so."""
    seen = {}
    real_measure = speed.measure

    def spy(model, row, repeats, warmup):
        def look(module, args):     # a pre-hook's non-None return would replace the input
            seen.setdefault("input", args[0].is_contiguous(memory_format=torch.channels_last))

        handle = model.register_forward_pre_hook(look)
        seen["weight"] = model.patch_embed[0].weight.is_contiguous(memory_format=torch.channels_last)
        try:
            real_measure(model, row, repeats, warmup)
        finally:
            handle.remove()

    monkeypatch.setattr(speed, "measure", spy)
    rows = speed.run_benchmark(["vmamba_tiny_s1l8"], [64], batch=1, mode="infer", dtype="fp32", device="cpu",
                               repeats=1, warmup=0, channels_last=True, progress=False)
    assert rows[0]["status"] == "ok", rows[0]
    assert rows[0]["channels_last"] is True and rows[0]["label"] == "vmamba_tiny_s1l8+cl"
    assert seen == {"input": True, "weight": True}


def test_inductor_layout_optimisation_is_read_from_inductor_config(monkeypatch):
    import torch._inductor.config as inductor_config
    from vision_mamba.bench import speed
    for value in (False, True):
        monkeypatch.setattr(inductor_config, "layout_optimization", value)
        assert speed._inductor_layout_opt() is value
