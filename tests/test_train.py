"""tools/train.py and tools/eval.py on CPU: artifacts, exact resumption after a kill, corrupt and
malicious checkpoints, the non-finite-loss guard, and torchrun with two gloo ranks."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vision_mamba.training import CheckpointError, NonFiniteLossError, Trainer, checkpoint as ckpt
from vision_mamba.training.cli import build_train_parser, eval_main, parse_with_config
from vision_mamba.training.data import make_random_image_folder

ROOT = Path(__file__).resolve().parents[1]
TINY_VIM = {"img_size": 32, "patch_size": 8, "embed_dim": 16, "depth": 2, "d_state": 4, "scan_backend": "torch"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_random_image_folder(tmp_path_factory.mktemp("imgs"), classes=3, per_class=8, size=40)


def _args(folder, out, *extra):
    return ["--data-dir", str(folder), "--model", "vim_tiny_patch16_224", "--model-kwargs", json.dumps(TINY_VIM),
            "--input-size", "3", "32", "32", "--scale", "0.5", "1.0", "--batch-size", "4", "--epochs", "2",
            "--warmup-epochs", "0.5", "--lr", "3e-3", "--workers", "0", "--device", "cpu", "--threads", "1",
            "--output", str(out), "--log-interval", "1", "--drop-path", "0.1", "--mixup", "0.2", *extra]


def _train(argv):
    cfg = parse_with_config(build_train_parser(), argv)
    torch.set_num_threads(1)
    return Trainer(cfg).run()


def _run_tool(argv, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "tools" / "train.py"), *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _weights(run_dir):
    return load_file(str(ckpt.list_checkpoints(run_dir)[-1] / "model.safetensors"))


def test_train_writes_checkpoint_logs_plot_and_eval_agrees(folder, tmp_path, capsys):
    summary = _train(_args(folder, tmp_path / "run", "--ema", "--ema-decay", "0.9"))
    assert summary["steps"] == 2 * (24 // 4) and summary["epochs_completed"] == 2
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    rows = (tmp_path / "run" / "epochs.csv").read_text().splitlines()
    assert len(rows) == 3 and "val_top1" in rows[0] and "ema_top1" in rows[0]
    last = Path(summary["checkpoint"])
    assert {p.name for p in last.iterdir()} == {"model.safetensors", "ema.safetensors", "state.pt", "meta.json"}
    metrics = eval_main(["--checkpoint", str(last), "--data-dir", str(folder), "--model", "vim_tiny_patch16_224",
                         "--model-kwargs", json.dumps(TINY_VIM), "--input-size", "3", "32", "32",
                         "--device", "cpu", "--workers", "0"])
    assert metrics["images"] == 24
    assert metrics["top1"] == pytest.approx(summary["metrics"]["val_top1"])
    assert metrics["loss"] == pytest.approx(summary["metrics"]["val_loss"], rel=1e-5)


def test_killed_run_resumes_to_the_same_weights(folder, tmp_path):
    """Uninterrupted vs SIGKILLed after its first mid-run checkpoint and resumed with --resume auto."""
    common = ["--checkpoint-every", "2", "--keep-checkpoints", "10", "--deterministic"]
    _train(_args(folder, tmp_path / "full", *common))
    reference = _weights(tmp_path / "full")

    proc = _run_tool(_args(folder, tmp_path / "killed", *common), start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if any(p.name >= "step-00000004" for p in ckpt.list_checkpoints(tmp_path / "killed")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed:\n" + proc.stdout.read()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = ckpt.list_checkpoints(tmp_path / "killed")
    assert done and int(done[-1].name.split("-")[1]) < 12, "killed run reached the end"

    summary = _train(_args(folder, tmp_path / "killed", *common, "--resume", "auto"))
    assert summary["steps"] == 12
    resumed = _weights(tmp_path / "killed")
    assert resumed.keys() == reference.keys()
    for k in reference:
        torch.testing.assert_close(resumed[k], reference[k], rtol=0, atol=0, msg=k)


def test_corrupt_checkpoint_is_skipped_by_auto_and_named_otherwise(folder, tmp_path):
    out = tmp_path / "run"
    _train(_args(folder, out, "--checkpoint-every", "2", "--keep-checkpoints", "10", "--max-steps", "4"))
    newest = ckpt.list_checkpoints(out)[-1]
    good = (newest / "model.safetensors").read_bytes()
    data = bytearray(good)
    data[len(data) // 2] ^= 0xFF
    (newest / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors.*sha256"):
        ckpt.load_checkpoint(newest)
    with pytest.warns(UserWarning, match="skipping.*step-00000004"):
        assert ckpt.find_latest(out).name == "step-00000002"
    (newest / "model.safetensors").write_bytes(good)
    (newest / "state.pt").write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="state.pt"):
        _train(_args(folder, out, "--resume", str(newest)))
    with pytest.raises(CheckpointError, match="not a directory"):
        ckpt.verify_checkpoint(tmp_path / "nope")


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


def test_malicious_training_state_is_refused_and_never_runs(folder, tmp_path):
    out = tmp_path / "run"
    _train(_args(folder, out, "--max-steps", "2"))
    path = ckpt.list_checkpoints(out)[-1]
    _RunsCode.marker = tmp_path / "pwned"
    torch.save({"optimizer": _RunsCode()}, path / "state.pt", _use_new_zipfile_serialization=True,
               pickle_protocol=pickle.DEFAULT_PROTOCOL)
    meta = json.loads((path / "meta.json").read_text())   # re-sign it: only weights_only stands in the way
    meta["files"]["state.pt"] = {"bytes": (path / "state.pt").stat().st_size,
                                 "sha256": ckpt._sha256(path / "state.pt")}
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="weights_only"):
        ckpt.load_checkpoint(path)
    assert not _RunsCode.marker.exists()


def test_non_finite_losses_stop_the_run_with_the_last_good_state(folder, tmp_path):
    cfg = parse_with_config(build_train_parser(), _args(folder, tmp_path / "run", "--nan-patience", "3"))
    trainer = Trainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.criterion = lambda logits, target: logits.sum() * float("nan")
    with pytest.raises(NonFiniteLossError, match=r"step 3: 3 consecutive non-finite losses.*saved to"):
        trainer.run()
    saved = _weights(tmp_path / "run")
    for k, v in before.items():
        torch.testing.assert_close(saved[k], v, rtol=0, atol=0)
    meta = json.loads((ckpt.list_checkpoints(tmp_path / "run")[-1] / "meta.json").read_text())
    assert meta["step"] == 3 and "non-finite" in meta["metrics"]["stopped"]


def test_torchrun_two_gloo_ranks_keep_equal_weights(folder, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tools" / "train.py"), *_args(folder, out, "--max-steps", "4", "--batch-size", "2")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 4
    sums = summary["replica_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    saved = _weights(out)
    from_file = sum(float(v.double().square().sum() + v.double().sum()) for v in saved.values()
                    if v.is_floating_point())
    assert from_file == pytest.approx(sums[0], rel=1e-9)


def test_bad_config_and_data_errors(folder, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("lr: 0.1\nlearning_rate: 0.2\n")
    with pytest.raises(SystemExit):
        parse_with_config(build_train_parser(), ["--config", str(cfg)])
    with pytest.raises(FileNotFoundError, match="data_dir.*no such directory"):
        _train(_args(tmp_path / "missing", tmp_path / "run"))
    with pytest.raises(ValueError, match="model='no_such_model'"):
        _train(_args(folder, tmp_path / "run") + ["--model", "no_such_model"])
    with pytest.raises(ValueError, match="batch_size=64"):
        _train(_args(folder, tmp_path / "run") + ["--batch-size", "64"])


def test_shipped_configs_parse():
    for path in sorted((ROOT / "configs" / "cls").glob("*.yaml")):
        cfg = parse_with_config(build_train_parser(), ["--config", str(path)])
        assert cfg.model and cfg.epochs > 0, path
