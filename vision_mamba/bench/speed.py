"""Whole-model benchmark: latency, throughput and peak memory of timm models against resolution.

Library side of `tools/benchmark.py`:

    rows = run_benchmark(["vim_tiny_patch16_224", "vit_small_patch16_224"], [224, 512], batch=8,
                         mode="infer", dtype="bf16", device="cuda", repeats=20, warmup=5)
    report(rows); write_outputs(rows, metadata, "results/benchmark")

One row (a plain, JSON-ready dict) per (model, attention implementation, resolution, mode).  A model
that cannot be built or run at a resolution is recorded as status "skipped" with the reason; an
out-of-memory error as "OOM"; neither stops the run.

Timing and memory, and why they are measured the way they are:
- The first call is a probe (it decides "skipped"), then `warmup` untimed calls, then `repeats` timed
  calls; the row holds their median.  CUDA: torch.cuda.Event pairs with synchronisation (the timer of
  vision_mamba.bench.kernels); CPU: time.perf_counter.
- CUDA graphs (inference only, opt-in): after the warm-up the step is captured once into a
  torch.cuda.CUDAGraph and the timed calls replay it, so the per-kernel launch cost from Python is
  paid once; rows carry "cuda_graphs": true and a "+graphs" label.  Its memory counts what the
  capture allocated (the graph's private pool) as the peak.
- channels_last (opt-in, timm's --channels-last): model and batch in channels-last memory format; rows
  carry "channels_last": true and a "+cl" label.
- CUDA memory: torch.cuda.max_memory_allocated over the timed calls minus what is allocated before
  them (the weights, and in train mode the optimizer state), i.e. activations (+ gradients in train).
- CPU memory: there is no allocator high-water mark, so the resident set size is sampled in a thread
  (psutil when installed, else /proc/self/statm) during the probe and warm-up calls only (sampling
  must not disturb the timed calls): peak minus the RSS before them, measured after glibc's
  malloc_trim so that memory freed by the previous model is not silently reused.  Without either, the increase of
  getrusage's ru_maxrss, which is a process-wide high-water mark and so reads 0 whenever an earlier
  model peaked higher.  Either way a lower bound: the allocator may reuse memory it already holds.
"""
from __future__ import annotations

import csv
import gc
import json
import os
import resource
import statistics
import threading
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import timm
import torch

from .kernels import DTYPES, _free, _is_oom, collect_metadata, make_console, time_fn
from .models import count_model, create_at_size

MODES = ("infer", "train")
ATTN_IMPLS = ("sdpa", "eager")
# exception text kept in a row: enough to see why, short enough for a table cell
REASON_CHARS = 160
TABLE_REASON_CHARS = 60  # the full reason is in the JSON and CSV


# ------------------------------------------------------------------------------------------ models


def check_models(names: Sequence[str]) -> None:
    """Raise ValueError naming every model timm does not know (ours register on `import vision_mamba`)."""
    import vision_mamba  # noqa: F401 - registers the project's models with timm

    unknown = [n for n in names if not timm.is_model(n)]
    if unknown:
        raise ValueError(f"unknown model(s): {', '.join(unknown)} (not registered with timm; "
                         f"list them with timm.list_models('pattern*'))")


def has_attn_switch(model: torch.nn.Module) -> bool:
    return any(hasattr(m, "fused_attn") for m in model.modules())


def set_attn(model: torch.nn.Module, attn: str) -> None:
    """timm's attention modules pick F.scaled_dot_product_attention or the explicit softmax(QK^T)V from
    their `fused_attn` flag, read at every forward."""
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = attn == "sdpa"


def count_gflops(name: str, res: int) -> tuple[float | None, str | None]:
    """(GFLOPs of one image at res, None) from count_model, or (None, why not)."""
    try:
        return count_model(name, img_size=res)["gflops"], None
    except Exception as exc:  # noqa: BLE001 - FLOPs are optional in a row
        return None, _reason(exc)


def _reason(exc: BaseException) -> str:
    msg = " ".join(f"{type(exc).__name__}: {exc}".split())
    return msg if len(msg) <= REASON_CHARS else msg[:REASON_CHARS - 3] + "..."


# ------------------------------------------------------------------------------------------ memory


def _rss_reader():
    """(method, function returning the current RSS in bytes), or (method, None) to use ru_maxrss."""
    try:
        import psutil
        proc = psutil.Process()
        return "psutil rss (sampled)", lambda: proc.memory_info().rss
    except ImportError:
        pass
    if os.path.exists("/proc/self/statm"):
        page = os.sysconf("SC_PAGE_SIZE")

        def read():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * page
        return "/proc/self/statm rss (sampled)", read
    return "ru_maxrss delta", None


def _ru_maxrss_bytes() -> int:
    # Linux reports KiB, macOS bytes
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib if os.uname().sysname == "Darwin" else kib * 1024


def _malloc_trim() -> None:
    """Hand the heap memory freed by earlier models back to the OS (glibc), so that this model's calls
    have to grow the RSS again instead of silently reusing it."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class CpuPeakMemory:
    """`with CpuPeakMemory() as m: ...` then m.peak_increase (bytes) and m.method."""

    def __init__(self, interval_s: float = 0.001):
        self.method, self._read = _rss_reader()
        self.interval_s = interval_s
        self.peak_increase = 0

    def __enter__(self):
        gc.collect()
        _malloc_trim()
        if self._read is None:
            self._base = _ru_maxrss_bytes()
            return self
        self._base = self._peak = self._read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._peak = max(self._peak, self._read())
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc):
        if self._read is None:
            self.peak_increase = max(0, _ru_maxrss_bytes() - self._base)
            return False
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._read())
        self.peak_increase = max(0, self._peak - self._base)
        return False


def memory_method(device: str) -> str:
    if device == "cuda":
        return ("torch.cuda.max_memory_allocated over the timed calls minus memory allocated before them "
                "(weights, and optimizer state in train mode)")
    return (f"{_rss_reader()[0]}: peak RSS during the probe and warm-up calls minus RSS before them, "
            f"after glibc malloc_trim (still a lower bound: the allocator may reuse memory it holds)")


# ------------------------------------------------------------------------------------------ one row


def _autocast(device: str, dtype: str):
    """Mixed precision as training and inference usually run it: weights fp32, autocast to dtype."""
    if dtype == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device, dtype=DTYPES[dtype])


def make_step(model, mode: str, batch: int, res: int, dtype: str, device: str, channels_last: bool = False):
    """The callable that is timed: inference (no_grad forward) or a training step (forward, backward,
    SGD with momentum), on a fixed random batch (in channels-last memory format with channels_last, as
    timm's --channels-last feeds it)."""
    x = torch.randn(batch, 3, res, res, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    if mode == "infer":
        model.eval()

        def infer():
            with torch.no_grad(), _autocast(device, dtype):
                return model(x)
        return infer, None

    model.train()
    target = torch.randint(0, 1000, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def train():
        opt.zero_grad(set_to_none=True)
        with _autocast(device, dtype):
            out = model(x)
        loss = torch.nn.functional.cross_entropy(out.float(), target)
        loss.backward()
        opt.step()
    return train, opt


def _label(name: str, attn: str | None, cuda_graphs: bool = False, channels_last: bool = False) -> str:
    return ((f"{name}[{attn}]" if attn else name) + ("+cl" if channels_last else "")
            + ("+graphs" if cuda_graphs else ""))


def _base_row(name, attn, res, mode, dtype, device, batch, compile_, cuda_graphs=False, channels_last=False):
    return {"label": _label(name, attn, cuda_graphs, channels_last), "model": name, "attn": attn, "res": res,
            "mode": mode, "dtype": dtype, "device": device, "batch": batch, "compile": compile_,
            "cuda_graphs": cuda_graphs, "channels_last": channels_last, "status": "ok",
            "reason": None, "latency_ms": None, "images_per_s": None, "peak_mem_mb": None,
            "params_m": None, "gflops": None, "gflops_note": None, "times_ms": []}


def _probe(step) -> None:
    """The first call; its failure is tagged so the row reads 'skipped' (cannot run), not 'error'."""
    try:
        step()
    except Exception as exc:
        exc.benchmark_probe = True
        raise


def capture_cuda_graph(step):
    """`step` captured into a CUDA graph (after warm-up calls on a side stream, as torch requires); returns
    the replay function.  The step's inputs are fixed tensors, so replaying recomputes the same call."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def measure(model, row: dict, repeats: int, warmup: int) -> None:
    """Fill latency, img/s and memory into row; exceptions from the probe call are tagged 'probe'."""
    device, batch = row["device"], row["batch"]
    step, opt = make_step(model, row["mode"], batch, row["res"], row["dtype"], device,
                          row.get("channels_last", False))
    if device == "cuda":
        _probe(step)
        time_fn(step, 0, warmup, device)
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        held = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        if row.get("cuda_graphs"):
            step = capture_cuda_graph(step)
        times = time_fn(step, repeats, 0, device)
        peak = torch.cuda.max_memory_allocated() - held
    else:
        with CpuPeakMemory() as mem:
            _probe(step)
            time_fn(step, 0, warmup, device)
        peak = mem.peak_increase
        times = time_fn(step, repeats, 0, device)
    row["times_ms"] = times
    row["latency_ms"] = statistics.median(times)
    row["images_per_s"] = batch / (row["latency_ms"] / 1e3)
    row["peak_mem_mb"] = peak / 2**20


def run_one(name: str, attn: str | None, res: int, *, mode: str, dtype: str, device: str, batch: int,
            repeats: int, warmup: int, compile_: bool = False, cuda_graphs: bool = False,
            channels_last: bool = False) -> dict:
    row = _base_row(name, attn, res, mode, dtype, device, batch, compile_, cuda_graphs, channels_last)
    model = None
    try:
        try:
            model = create_at_size(name, res).to(device)
        except Exception as exc:
            exc.benchmark_probe = True
            raise
        if attn:
            set_attn(model, attn)
        row["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if compile_:
            model = torch.compile(model)
        measure(model, row, repeats, warmup)
    except Exception as exc:  # noqa: BLE001 - one failing row must not lose the run
        if _is_oom(exc):
            row.update(status="OOM", reason="OOM")
        elif getattr(exc, "benchmark_probe", False):
            # building the model or its first call failed: this model does not run at this size
            row.update(status="skipped", reason=_reason(exc))
        else:
            row.update(status="error", reason=_reason(exc))
    finally:
        del model
        _free(device)
    row["gflops"], row["gflops_note"] = count_gflops(name, res)  # on the meta device: never OOM
    return row


def attn_variants(name: str, attns: Sequence[str]) -> list[str | None]:
    """The attention implementations to run `name` with: all of `attns` if it has timm's fused_attn
    switch, else [None] (one run)."""
    with torch.device("meta"):
        model = timm.create_model(name)
    return list(attns) if has_attn_switch(model) else [None]


def validate(models, resolutions, batch, mode, dtype, attns, device, repeats, warmup, cuda_graphs=False) -> None:
    """Raise ValueError with a readable message for arguments that cannot run."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if cuda_graphs and (device != "cuda" or mode != "infer"):
        raise ValueError(f"cuda_graphs needs device 'cuda' and mode 'infer', got device={device!r}, mode={mode!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' asked for, but torch sees no CUDA device (use --device cpu)")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if device == "cpu" and dtype == "fp16":
        raise ValueError("fp16 autocast is a CUDA feature; on CPU use fp32 or bf16")
    bad_attn = [a for a in attns if a not in ATTN_IMPLS]
    if bad_attn or not attns:
        raise ValueError(f"attn must be among {', '.join(ATTN_IMPLS)}, got {list(attns)}")
    if not resolutions or any(r <= 0 for r in resolutions):
        raise ValueError(f"resolutions must be positive, got {list(resolutions)}")
    if batch < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need batch >= 1, repeats >= 1, warmup >= 0; got {batch}, {repeats}, {warmup}")
    check_models(models)


def run_benchmark(models: Sequence[str], resolutions: Sequence[int], *, batch: int, mode: str, dtype: str,
                  device: str, attns: Sequence[str] = ATTN_IMPLS, repeats: int, warmup: int,
                  compile_: bool = False, cuda_graphs: bool = False, channels_last: bool = False,
                  progress: bool = True) -> list[dict]:
    validate(models, resolutions, batch, mode, dtype, attns, device, repeats, warmup, cuda_graphs)
    console = make_console(stderr=True, quiet=not progress)
    rows = []
    for name in models:
        for attn in attn_variants(name, attns):
            for res in resolutions:
                row = run_one(name, attn, res, mode=mode, dtype=dtype, device=device, batch=batch,
                              repeats=repeats, warmup=warmup, compile_=compile_, cuda_graphs=cuda_graphs,
                              channels_last=channels_last)
                rows.append(row)
                console.print(_progress_line(row), markup=False, highlight=False)
    return rows


# ------------------------------------------------------------------------------------------ output


def _progress_line(row: dict) -> str:
    head = f"{row['label']} {row['res']}px {row['mode']}:"
    if row["status"] != "ok":
        return f"{head} {row['status']} {row['reason'] or ''}".rstrip()
    return (f"{head} {row['latency_ms']:.2f} ms, {row['images_per_s']:.1f} img/s, "
            f"{row['peak_mem_mb']:.1f} MiB")


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def render_table(rows: list[dict], title: str = "Model benchmark"):
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    for c in ("model", "res", "mode", "dtype", "status", "latency ms", "img/s", "peak mem MiB",
              "params M", "GFLOPs"):
        table.add_column(c, justify="left" if c in ("model", "mode", "dtype", "status") else "right")
    for r in rows:
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r['reason']}"
        status = status if len(status) <= TABLE_REASON_CHARS else status[:TABLE_REASON_CHARS - 3] + "..."
        table.add_row(*(Text(c) for c in (
            r["label"], str(r["res"]), r["mode"], r["dtype"], status, _fmt(r["latency_ms"], ".2f"),
            _fmt(r["images_per_s"], ".1f"), _fmt(r["peak_mem_mb"], ".1f"), _fmt(r["params_m"], ".2f"),
            _fmt(r["gflops"], ".2f"))))
    return table


CSV_FIELDS = ("label", "model", "attn", "res", "mode", "dtype", "device", "batch", "compile", "cuda_graphs",
              "channels_last", "status",
              "reason", "latency_ms", "images_per_s", "peak_mem_mb", "params_m", "gflops", "gflops_note")


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def plot(rows: list[dict], key: str, ylabel: str, path: Path, title: str) -> Path:
    """One line per label of `key` against resolution, log y.  A resolution where the model was OOM or
    skipped gets an 'x' (red for OOM, grey for skipped) at the line's last valid value, or on the
    x-axis when there is none."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    floor = min((r[key] for r in rows if r[key]), default=1.0)
    marked = set()
    for label in labels:
        pts = sorted((r for r in rows if r["label"] == label), key=lambda r: r["res"])
        ok = [r for r in pts if r["status"] == "ok" and r[key]]
        if ok:
            ax.plot([r["res"] for r in ok], [r[key] for r in ok], marker="o", label=label)
        else:  # no valid point at all: the label still belongs in the legend
            failed = sorted({r["status"] for r in pts})
            ax.plot([], [], marker="x", linestyle="none", color="grey", label=f"{label} ({', '.join(failed)})")
        last = None
        for r in pts:
            if r["status"] == "ok" and r[key]:
                last = r[key]
            elif r["status"] in ("OOM", "skipped"):
                ax.plot(r["res"], last or floor, marker="x", markersize=10, linestyle="none",
                        color="red" if r["status"] == "OOM" else "grey")
                marked.add(r["status"])
    for status, color in (("OOM", "red"), ("skipped", "grey")):
        if status in marked:
            ax.plot([], [], marker="x", linestyle="none", color=color, label=f"x = {status}")
    ax.set_yscale("log")
    ax.set_xlabel("resolution (px)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_outputs(rows: list[dict], metadata: dict, out_dir: str | os.PathLike) -> list[Path]:
    """benchmark.json (rows + metadata), benchmark.csv, memory.png, throughput.png in out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "benchmark.json"
    json_path.write_text(json.dumps({"metadata": metadata, "results": rows}, indent=2, default=str) + "\n")
    r0 = rows[0] if rows else {}
    what = f"{r0.get('mode', '')}, batch {r0.get('batch', '')}, {r0.get('dtype', '')}, {metadata['device_name']}"
    return [json_path, write_csv(out / "benchmark.csv", rows),
            plot(rows, "peak_mem_mb", "peak memory (MiB)", out / "memory.png", f"Peak memory ({what})"),
            plot(rows, "images_per_s", "throughput (images/s)", out / "throughput.png",
                 f"Throughput ({what})")]


def _inductor_layout_opt() -> bool:
    import torch._inductor.config as inductor_config   # only when compiling
    return bool(inductor_config.layout_optimization)


def run_and_report(models: Sequence[str], resolutions: Sequence[int], *, batch: int, mode: str, dtype: str,
                   device: str, attns: Sequence[str], repeats: int, warmup: int, compile_: bool,
                   out_dir: str | os.PathLike, progress: bool = True, cuda_graphs: bool = False,
                   channels_last: bool = False, argv: Sequence[str] | None = None) -> int:
    """What tools/benchmark.py runs: benchmark, print the table, write JSON, CSV and plots.  Returns the
    exit status: 1 when a row failed with an error that is neither OOM nor 'skipped'."""
    console = make_console()
    meta = collect_metadata(device, argv)
    for k in ("triton", "mamba_ssm", "timing", "inputs"):  # the kernel benchmark's, not ours
        meta.pop(k, None)
    meta.update(timm=timm.__version__, batch=batch, mode=mode, dtype=dtype, repeats=repeats, warmup=warmup,
                compile=compile_, cuda_graphs=cuda_graphs, channels_last=channels_last, memory_method=memory_method(device),
                # inductor's channels-last layout optimisation (env TORCHINDUCTOR_LAYOUT_OPTIMIZATION) changes
                # VMamba's compiled training step (GPU time 67.5 with vs 61.0 ms without, docs/benchmarks.md,
                # session 10): record which one ran
                inductor_layout_optimization=_inductor_layout_opt() if compile_ else None,
                timing=("median of the timed calls after one probe call and the warm-up calls; " +
                        ("torch.cuda.Event pairs, synchronised" if device == "cuda" else "time.perf_counter")),
                precision=("fp32" if dtype == "fp32" else
                           f"fp32 weights, torch.autocast({device}, {DTYPES[dtype]})"),
                train_step=("forward, cross-entropy on random labels, backward, SGD(momentum=0.9) step"
                            if mode == "train" else None))
    console.print(f"[bold]model benchmark[/] on {meta['device_name']} (torch {meta['torch']}, "
                  f"timm {meta['timm']}, {meta['threads']} threads)")
    rows = run_benchmark(models, resolutions, batch=batch, mode=mode, dtype=dtype, device=device, attns=attns,
                         repeats=repeats, warmup=warmup, compile_=compile_, cuda_graphs=cuda_graphs,
                         channels_last=channels_last, progress=progress)
    console.print(render_table(rows))
    console.print(f"memory: {meta['memory_method']}", markup=False, highlight=False, soft_wrap=True)
    for path in write_outputs(rows, meta, out_dir):
        console.print(f"wrote {path}", markup=False, highlight=False, soft_wrap=True)
    failed = [r for r in rows if r["status"] == "error"]
    if failed:
        console.print(f"[red]{len(failed)} row(s) failed[/]")
        return 1
    return 0
