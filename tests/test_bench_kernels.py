"""The kernel benchmark: the command line end to end on a tiny shape, and its JSON."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vision_mamba.bench import kernels as bench

ROOT = Path(__file__).resolve().parents[1]


def test_cli_writes_table_and_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_kernels.py"), "--device", "cpu", "--shape", "1,8,40,4,2,z",
         "--backends", "reference", "torch", "--repeats", "2", "--warmup", "1", "--check", "--no-progress",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "torch" in proc.stdout and "reference" in proc.stdout
    data = json.loads(out.read_text())
    assert {"date", "command", "device_name", "torch"} <= set(data["metadata"])
    rows = {r["backend"]: r for r in data["results"]}
    assert set(rows) == {"reference", "torch"}
    torch_row = rows["torch"]
    assert torch_row["status"] == "ok"
    assert torch_row["fwd_ms"] > 0 and torch_row["fwd_bwd_ms"] > 0
    assert torch_row["rel_err"]["y"] < 1e-5
    assert set(torch_row["rel_err"]) >= {"y", "du", "ddelta", "dA", "dB", "dC", "dD", "dz", "ddelta_bias"}
    assert all(err < 1e-4 for err in torch_row["rel_err"].values())


def test_custom_shape_is_validated():
    with pytest.raises(ValueError, match="G"):
        bench.parse_shape("1,6,10,4,4")          # 4 groups do not divide dim 6


@pytest.mark.parametrize("groups,z", [(1, True), (2, False)])
def test_token_major_inputs_hold_the_same_values_as_views(groups, z):
    """--layout token-major: the same values as the channel-major inputs, laid out as Vim's inference
    path holds them (u, delta, z with unit channel stride, B / C slices of one projection)."""
    shape = bench.ScanShape("t", 2, 64, 9, 4, groups, z)
    cm = bench.make_inputs(shape, torch.float32, "cpu", seed=3)
    tm = bench.make_inputs(shape, torch.float32, "cpu", seed=3, layout="token-major")
    for name, t in cm.items():
        if t is None:
            assert tm[name] is None
            continue
        assert torch.equal(tm[name], t), name
        if name in ("u", "delta", "z", "B", "C"):
            assert tm[name].stride(-1) != 1 and tm[name].shape == t.shape, name
    assert tm["B"].stride(-2) == 1 and tm["u"].stride(1) == 1
    with pytest.raises(ValueError, match="layout='rows'"):
        bench.make_inputs(shape, torch.float32, "cpu", layout="rows")


def test_cli_token_major_layout(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_kernels.py"), "--device", "cpu", "--shape", "1,8,30,4,1,z",
         "--backends", "reference", "torch", "--repeats", "1", "--warmup", "0", "--check", "--no-progress",
         "--layout", "token-major", "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["metadata"]["layout"] == "token-major"
    row = next(r for r in data["results"] if r["backend"] == "torch")
    assert row["layout"] == "token-major" and row["shape"].endswith("[token-major]")
    assert all(err < 1e-4 for err in row["rel_err"].values())
