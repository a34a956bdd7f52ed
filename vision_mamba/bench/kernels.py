"""Benchmark of the selective-scan backends on named shapes: forward and forward+backward time, speedups,
and (optionally) the error of every output and gradient against the sequential reference.

Library side of `tools/bench_kernels.py`; everything here is importable and testable:

    rows = run_benchmark(["cpu_vim"], ["reference", "torch"], ["fp32"], "cpu", repeats=3, warmup=1, check=True)
    report(rows)                     # or rich.console.Console().print(render_table(rows))

Every row is a plain dict (JSON-ready).  Timing: forward alone runs under `torch.no_grad()` (inference);
forward+backward runs on leaf inputs that require grad and calls `torch.autograd.grad` with a fixed random
grad_output for every float input (u, delta, A, B, C, D, z, delta_bias).  Medians over `repeats` after
`warmup` calls; CPU with `time.perf_counter`, CUDA with `torch.cuda.Event`s around each call, synchronised
before and after it.
"""
from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch

from vision_mamba.kernels import selective_scan

# --------------------------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class ScanShape:
    """One benchmark problem: u, delta, z (batch, dim, L); A (dim, N); B, C (batch, G, N, L)."""
    name: str
    batch: int
    dim: int
    L: int
    N: int
    G: int
    z: bool

    def __post_init__(self):
        for field in ("batch", "dim", "L", "N", "G"):
            if getattr(self, field) <= 0:
                raise ValueError(f"shape {self.name!r}: {field}={getattr(self, field)} must be > 0")
        if self.dim % self.G:
            raise ValueError(f"shape {self.name!r}: G={self.G} must divide dim={self.dim}")

    def describe(self) -> str:
        return f"b={self.batch} d={self.dim} L={self.L} N={self.N} G={self.G}" + (" z" if self.z else "")


SHAPES: dict[str, ScanShape] = {s.name: s for s in (
    # Vim-S: one layer at 224px (196 patches + cls token), and at 1024px (4096 patches + cls)
    ScanShape("vim_s_layer", 64, 768, 197, 16, 1, True),
    ScanShape("vim_s_1024", 8, 768, 4097, 16, 1, True),
    # VMamba-T stage 1: 56x56 tokens, 4 scan directions x 192 channels with one B/C group per direction,
    # d_state=1, no gate
    ScanShape("vmamba_t_stage1", 64, 768, 3136, 1, 4, False),
    ScanShape("long", 4, 768, 16384, 16, 1, True),
    # Vim-S inference, batch 8, at 1248 px (78 x 78 patches + cls) and 2048 px (128 x 128 + cls)
    ScanShape("vim_s_1248", 8, 768, 6085, 16, 1, True),
    ScanShape("vim_s_2048", 8, 768, 16385, 16, 1, True),
    # small enough for a CPU run in a couple of minutes, reference included
    ScanShape("cpu_vmamba", 2, 192, 3136, 1, 4, False),
    ScanShape("cpu_vim", 2, 384, 197, 16, 1, True),
)}
GPU_SHAPES = ("vim_s_layer", "vim_s_1024", "vmamba_t_stage1", "long")
CPU_SHAPES = ("cpu_vmamba", "cpu_vim")

# channel-major: contiguous (batch, dim, L) inputs (the training path); token-major: the views Vim's
# inference path hands over -- u, delta (batch, L, dim), z the second half of a (batch, L, 2 dim) tensor,
# B / C slices of a (batch, L, rank + 2 G N) projection -- each viewed as (batch, dim, L)
LAYOUTS = ("channel-major", "token-major")

ALL_BACKENDS = ("reference", "torch", "triton", "mamba_ssm")
CUDA_ONLY_BACKENDS = ("triton", "mamba_ssm")
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

GRAD_NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
ERR_KEYS = ("y",) + tuple(f"d{n}" for n in GRAD_NAMES)

# the sequential reference builds an L-step autograd graph: on CPU its gradients are only worth
# computing (for --check) up to this length
CPU_REFERENCE_GRAD_MAX_L = 4096


def parse_shape(spec: str) -> ScanShape:
    """'batch,dim,L,N,G[,z]' (e.g. '2,64,100,16,1,z') -> ScanShape; a trailing 'noz' is accepted too."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    has_z = False
    if parts and not parts[-1].lstrip("-").isdigit():
        flag = parts.pop().lower()
        if flag not in ("z", "noz"):
            raise ValueError(f"shape {spec!r}: the optional 6th field must be 'z' or 'noz', got {flag!r}")
        has_z = flag == "z"
    if len(parts) != 5:
        raise ValueError(f"shape {spec!r}: expected batch,dim,L,N,G[,z] (5 integers, then optionally z)")
    try:
        batch, dim, length, n, g = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"shape {spec!r}: batch,dim,L,N,G must be integers") from None
    name = f"b{batch}_d{dim}_L{length}_N{n}_G{g}" + ("_z" if has_z else "")
    try:
        return ScanShape(name, batch, dim, length, n, g, has_z)
    except ValueError as exc:
        raise ValueError(f"shape {spec!r}: {str(exc).split(': ', 1)[-1]}") from None


def resolve_shapes(names: Iterable[str | ScanShape]) -> list[ScanShape]:
    out = []
    for s in names:
        if isinstance(s, ScanShape):
            out.append(s)
        elif s in SHAPES:
            out.append(SHAPES[s])
        else:
            raise ValueError(f"unknown shape {s!r}; named shapes: {', '.join(SHAPES)} "
                             f"(or give a custom one as batch,dim,L,N,G[,z])")
    return out


# ------------------------------------------------------------------------------------------- defaults


def cuda_available() -> bool:
    return torch.cuda.is_available()


def mamba_ssm_available() -> bool:
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except Exception:
        return False
    return True


def default_device() -> str:
    return "cuda" if cuda_available() else "cpu"


def default_shapes(device: str) -> list[str]:
    return list(GPU_SHAPES if device == "cuda" else CPU_SHAPES)


def default_backends(device: str) -> list[str]:
    if device != "cuda":
        return ["reference", "torch"]
    return ["torch", "triton"] + (["mamba_ssm"] if mamba_ssm_available() else [])


def default_dtypes(device: str) -> list[str]:
    return ["bf16"] if device == "cuda" else ["fp32"]


def default_repeats(device: str) -> tuple[int, int]:
    """(repeats, warmup)"""
    return (50, 10) if device == "cuda" else (10, 2)


def validate(backends: Sequence[str], dtypes: Sequence[str], device: str) -> None:
    """Raise ValueError with a readable message for a combination that cannot run."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not cuda_available():
        raise ValueError("device 'cuda' asked for, but torch sees no CUDA device (use --device cpu)")
    for b in backends:
        if b not in ALL_BACKENDS:
            raise ValueError(f"unknown backend {b!r}; choose from {', '.join(ALL_BACKENDS)}")
        if device != "cuda" and b in CUDA_ONLY_BACKENDS:
            raise ValueError(f"backend {b!r} needs CUDA (the Triton interpreter is far too slow to "
                             f"benchmark; test it with pytest -m triton_interpret instead)")
        if b == "mamba_ssm" and not mamba_ssm_available():
            raise ValueError("backend 'mamba_ssm' asked for, but "
                             "`from mamba_ssm.ops.selective_scan_interface import selective_scan_fn` fails")
    for d in dtypes:
        if d not in DTYPES:
            raise ValueError(f"unknown dtype {d!r}; choose from {', '.join(DTYPES)}")


# --------------------------------------------------------------------------------------------- inputs


def make_inputs(shape: ScanShape, dtype: torch.dtype, device: str, seed: int = 0,
                layout: str = "channel-major") -> dict:
    """The models' way of calling the scan: with D, delta_bias and delta_softplus=True.
    u, z, B, C ~ randn and delta ~ 0.5 randn in `dtype`; A = -exp(0.5 randn), D ~ randn and
    delta_bias ~ 0.5 randn - 2 in fp32 (parameters stay fp32).  `layout` (see LAYOUTS) changes only
    where the values sit in memory: the same seed gives the same values in both."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}, expected one of {LAYOUTS}")
    g = torch.Generator(device=device).manual_seed(seed)
    b, d, L, n, G = shape.batch, shape.dim, shape.L, shape.N, shape.G

    def randn(*size, dt=dtype):
        return torch.randn(*size, generator=g, device=device, dtype=torch.float32).to(dt)

    inputs = {
        "u": randn(b, d, L),
        "delta": (0.5 * randn(b, d, L, dt=torch.float32)).to(dtype),
        "A": -torch.exp(0.5 * randn(d, n, dt=torch.float32)),
        "B": randn(b, G, n, L),
        "C": randn(b, G, n, L),
        "D": randn(d, dt=torch.float32),
        "z": randn(b, d, L) if shape.z else None,
        "delta_bias": 0.5 * randn(d, dt=torch.float32) - 2.0,
    }
    return _token_major(inputs, shape) if layout == "token-major" else inputs


def _token_major(inputs: dict, shape: ScanShape) -> dict:
    """The same values laid out as Vim's token-major inference path holds them (LAYOUTS)."""
    b, d, L, n, G = shape.batch, shape.dim, shape.L, shape.N, shape.G
    rank = max(1, d // 32)                 # the dt projection's rank sits before B and C (Vim: d_inner / 32)
    u, z = inputs["u"], inputs["z"]
    xz = torch.cat([u, z if z is not None else u], 1).transpose(1, 2).contiguous()       # (b, L, 2d)
    bc = torch.cat([inputs["B"].reshape(b, G * n, L), inputs["C"].reshape(b, G * n, L)], 1)
    proj = torch.cat([bc.new_zeros(b, rank, L), bc], 1).transpose(1, 2).contiguous()      # (b, L, rank + 2GN)
    as_bgnl = lambda t: t.transpose(1, 2).unflatten(1, (G, n))                           # noqa: E731
    return dict(inputs, u=xz[..., :d].contiguous().transpose(1, 2),
                delta=inputs["delta"].transpose(1, 2).contiguous().transpose(1, 2),
                z=xz[..., d:].transpose(1, 2) if z is not None else None,
                B=as_bgnl(proj[..., rank:rank + G * n]), C=as_bgnl(proj[..., rank + G * n:]))


def backend_fn(name: str) -> Callable:
    """A callable with selective_scan's signature (u, delta, A, B, C, D=, z=, delta_bias=, delta_softplus=)."""
    if name == "mamba_ssm":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        return selective_scan_fn

    def fn(**kw):
        return selective_scan(**kw, backend=name)
    return fn


def _grad_leaves(inputs: dict) -> dict:
    return {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items() if v is not None}


def forward_backward(fn: Callable, inputs: dict, grad_out: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """y and the gradient of <y, grad_out> w.r.t. every (non-None) input."""
    leaves = _grad_leaves(inputs)
    y = fn(**leaves, delta_softplus=True)
    grads = torch.autograd.grad(y, list(leaves.values()), grad_out)
    return y.detach(), dict(zip(leaves, grads))


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """||x - ref|| / ||ref|| in fp64 (0 when both are 0)."""
    x, ref = x.detach().double(), ref.detach().double()
    num = torch.linalg.vector_norm(x - ref).item()
    den = torch.linalg.vector_norm(ref).item()
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


# --------------------------------------------------------------------------------------------- timing


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_fn(fn: Callable[[], object], repeats: int, warmup: int, device: str) -> list[float]:
    """Wall time of each of `repeats` calls of fn (after `warmup` calls), in ms."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def _is_oom(exc: BaseException) -> bool:
    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None),
                                  getattr(torch.cuda, "OutOfMemoryError", None)) if t is not None)
    msg = str(exc)
    return isinstance(exc, oom_types) or (isinstance(exc, RuntimeError) and (
        "out of memory" in msg or "not enough memory" in msg))


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------ benchmark


def _reference_result(inputs: dict, grad_out: torch.Tensor, shape: ScanShape, device: str):
    """(y_ref, grads_ref or None, note) from the reference backend on fp32-upcast copies of the inputs."""
    up = {k: (v.float() if v is not None else None) for k, v in inputs.items()}
    ref = backend_fn("reference")
    if device == "cpu" and shape.L > CPU_REFERENCE_GRAD_MAX_L:
        with torch.no_grad():
            y = ref(**up, delta_softplus=True)
        return y, None, (f"gradients not checked: the CPU reference is too slow for "
                         f"L={shape.L} > {CPU_REFERENCE_GRAD_MAX_L}")
    y, grads = forward_backward(ref, up, grad_out.float())
    return y, grads, None


def _base_row(shape: ScanShape, backend: str, dtype: str, device: str, layout: str = "channel-major") -> dict:
    name = shape.name if layout == "channel-major" else f"{shape.name} [{layout}]"
    row = {"shape": name, **{k: v for k, v in asdict(shape).items() if k != "name"}, "layout": layout,
           "backend": backend, "dtype": dtype, "device": device, "status": "ok", "error": None,
           "fwd_ms": None, "fwd_bwd_ms": None, "fwd_times_ms": [], "fwd_bwd_times_ms": [],
           "repeats": None, "warmup": None}
    return row


def run_benchmark(shapes: Sequence[str | ScanShape], backends: Sequence[str], dtypes: Sequence[str],
                  device: str, repeats: int, warmup: int, check: bool = False, *, seed: int = 0,
                  progress: bool = True, layout: str = "channel-major") -> list[dict]:
    """Time every (shape, dtype, backend); with `check`, also the relative error of y and of every
    gradient against the reference backend run on fp32 copies of the same inputs.  `layout`: how the
    inputs sit in memory (LAYOUTS); the token-major one is what Vim's inference path hands the scan.

    The reference backend is timed with min(repeats, max(3, repeats // 5)) repeats and at most one
    warm-up call (it is a Python loop over L).  An out-of-memory error is recorded in its row
    (status 'OOM'), any other exception as status 'error' with its message; neither stops the run.
    """
    shape_objs = resolve_shapes(shapes)
    validate(backends, dtypes, device)
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")

    rows: list[dict] = []
    n_tasks = len(shape_objs) * len(dtypes) * (len(backends) + (1 if check else 0))
    prog = _make_progress(progress)
    with prog:
        task = prog.add_task("benchmark", total=n_tasks)
        for shape in shape_objs:
            for dtype_name in dtypes:
                dtype = DTYPES[dtype_name]
                inputs = grad_out = ref_y = ref_grads = None
                ref_note = ref_error = None
                try:
                    inputs = make_inputs(shape, dtype, device, seed, layout)
                    g = torch.Generator(device=device).manual_seed(seed + 1)
                    grad_out = torch.randn(shape.batch, shape.dim, shape.L, generator=g, device=device,
                                           dtype=torch.float32).to(dtype)
                    if check:
                        prog.update(task, description=f"{shape.name} {dtype_name} reference result (--check)")
                        ref_y, ref_grads, ref_note = _reference_result(inputs, grad_out, shape, device)
                except Exception as exc:  # noqa: BLE001 - recorded in the rows of this group
                    ref_error = ("OOM" if _is_oom(exc) else f"{type(exc).__name__}: {exc}".strip())
                    ref_error += (" (making the inputs)" if grad_out is None
                                  else " (computing the reference result for --check)")
                    ref_y = ref_grads = None
                    _free(device)
                if check:
                    prog.advance(task)

                for backend in backends:
                    row = _base_row(shape, backend, dtype_name, device, layout)
                    rows.append(row)
                    if grad_out is None:  # no inputs: nothing to time
                        row.update(status="OOM" if ref_error.startswith("OOM") else "error", error=ref_error)
                        prog.console.print(_progress_line(row), markup=False, highlight=False)
                        prog.advance(task)
                        continue
                    is_ref = backend == "reference"
                    reps = min(repeats, max(3, repeats // 5)) if is_ref else repeats
                    warm = min(warmup, 1) if is_ref else warmup
                    row.update(repeats=reps, warmup=warm)
                    try:
                        fn = backend_fn(backend)
                        prog.update(task, description=f"{shape.name} {dtype_name} {backend}: fwd")

                        def fwd():
                            with torch.no_grad():
                                return fn(**inputs, delta_softplus=True)
                        row["fwd_times_ms"] = time_fn(fwd, reps, warm, device)
                        row["fwd_ms"] = statistics.median(row["fwd_times_ms"])

                        prog.update(task, description=f"{shape.name} {dtype_name} {backend}: fwd+bwd")
                        leaves = _grad_leaves(inputs)
                        targets = list(leaves.values())

                        def fwd_bwd():
                            y = fn(**leaves, delta_softplus=True)
                            return torch.autograd.grad(y, targets, grad_out)
                        row["fwd_bwd_times_ms"] = time_fn(fwd_bwd, reps, warm, device)
                        row["fwd_bwd_ms"] = statistics.median(row["fwd_bwd_times_ms"])
                        del leaves, targets

                        if check:
                            try:
                                _check_row(row, fn, inputs, grad_out, ref_y, ref_grads, ref_note, ref_error)
                            except Exception as exc:  # noqa: BLE001
                                if not _is_oom(exc):
                                    raise
                                _free(device)
                                row["check_note"] = "not checked: OOM running the backend for --check"
                    except Exception as exc:  # noqa: BLE001 - one failing row must not lose the run
                        if _is_oom(exc):
                            row.update(status="OOM", error="OOM")
                        else:
                            row.update(status="error", error=f"{type(exc).__name__}: {exc}".strip())
                    finally:
                        _free(device)
                    prog.console.print(_progress_line(row), markup=False, highlight=False)
                    prog.advance(task)
                del inputs, grad_out, ref_y, ref_grads
                _free(device)
    add_speedups(rows)
    return rows


def _check_row(row, fn, inputs, grad_out, ref_y, ref_grads, ref_note, ref_error) -> None:
    if ref_error is not None:
        if not ref_error.startswith("OOM"):  # a bug, not a size limit: fail the row loudly
            raise RuntimeError(f"--check: {ref_error}")
        row["check_note"] = f"not checked: {ref_error}"
        return
    # y: the worse of the no_grad forward and the forward under autograd, which may run other kernels
    # (the Triton backend picks its inference kernel by layout and size, see choose_kernel)
    with torch.no_grad():
        errs = {"y": rel_err(fn(**inputs, delta_softplus=True), ref_y)}
    grads = {}
    if ref_grads is not None:
        y, grads = forward_backward(fn, inputs, grad_out)
        errs["y"] = max(errs["y"], rel_err(y, ref_y))
    for name in GRAD_NAMES:
        if ref_grads is not None and name in ref_grads:
            errs[f"d{name}"] = rel_err(grads[name], ref_grads[name])
    row["rel_err"] = errs
    row["check_note"] = ref_note


def add_speedups(rows: list[dict]) -> None:
    """speedup_vs_<baseline>_{fwd,fwd_bwd} = baseline time / row time, for the baselines 'reference' and
    'mamba_ssm' where they ran (status ok) on the same shape and dtype."""
    for baseline in ("reference", "mamba_ssm"):
        base = {(r["shape"], r["dtype"]): r for r in rows if r["backend"] == baseline and r["status"] == "ok"}
        for r in rows:
            b = base.get((r["shape"], r["dtype"]))
            for kind in ("fwd", "fwd_bwd"):
                key = f"speedup_vs_{baseline}_{kind}"
                if b is None:
                    r.setdefault(key, None)
                    continue
                t, tb = r.get(f"{kind}_ms"), b.get(f"{kind}_ms")
                r[key] = (tb / t) if (t and tb) else None


# ------------------------------------------------------------------------------------------ reporting


def collect_metadata(device: str, argv: Sequence[str] | None = None) -> dict:
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(argv if argv is not None else [sys.executable] + sys.argv),
        "device": device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "mamba_ssm": _version("mamba_ssm"),
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "timing": ("median over repeats after warm-up; fwd under torch.no_grad(); fwd+bwd = forward on "
                   "leaf inputs + torch.autograd.grad w.r.t. every float input with a fixed random "
                   "grad_output; " + ("torch.cuda.Event around each call, synchronised"
                                      if device == "cuda" else "time.perf_counter")),
        "inputs": ("u, z, B, C ~ randn, delta ~ 0.5*randn (benchmark dtype); A = -exp(0.5*randn), "
                   "D ~ randn, delta_bias ~ 0.5*randn - 2 (fp32); delta_softplus=True"),
    }
    return meta


def _version(dist: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return None


def device_name(device: str) -> str:
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} logical CPUs)"


def write_json(path: str | os.PathLike, rows: list[dict], metadata: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"metadata": metadata, "results": rows}, indent=2, default=str) + "\n")
    return path


def _fmt_ms(v) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _fmt_x(v) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}x" if v >= 10 else f"{v:.2f}x"


def _fmt_err(v) -> str:
    return "-" if v is None else f"{v:.1e}"


def _pair(a, b, fmt) -> str:
    return "-" if a is None and b is None else f"{fmt(a)} / {fmt(b)}"


def _has(rows, key) -> bool:
    return any(r.get(key) is not None for r in rows)


def _max_grad_err(row) -> tuple[str, float] | None:
    errs = {k: v for k, v in (row.get("rel_err") or {}).items() if k != "y"}
    if not errs:
        return None
    k = max(errs, key=errs.get)
    return k, errs[k]


def table_columns(rows: list[dict]) -> list[str]:
    cols = ["shape", "backend", "dtype", "fwd ms", "fwd+bwd ms"]
    if _has(rows, "speedup_vs_reference_fwd"):
        cols.append("vs reference (fwd / fwd+bwd)")
    if _has(rows, "speedup_vs_mamba_ssm_fwd"):
        cols.append("vs mamba_ssm (fwd / fwd+bwd)")
    if any("rel_err" in r or "check_note" in r for r in rows):
        cols += ["rel err y", "max rel err grad"]
    return cols


def table_cells(row: dict, cols: list[str]) -> list[str]:
    failed = row["status"] != "ok"
    msg = (row["status"] if row["status"] == "OOM" else f"error: {row['error']}") if failed else ""
    # where a failed row says why: the first time it lacks, else the first column after the times
    if row.get("fwd_ms") is None:
        msg_col = "fwd ms"
    elif row.get("fwd_bwd_ms") is None:
        msg_col = "fwd+bwd ms"
    else:
        later = cols[cols.index("fwd+bwd ms") + 1:]
        msg_col = later[0] if later else "fwd+bwd ms"
    cells = []
    for c in cols:
        if c == "shape":
            cells.append(row["shape"])
        elif c == "backend":
            cells.append(row["backend"])
        elif c == "dtype":
            cells.append(row["dtype"])
        elif failed and c in ("fwd ms", "fwd+bwd ms"):
            v = _fmt_ms(row.get("fwd_ms" if c == "fwd ms" else "fwd_bwd_ms"))
            v = "" if v == "-" else v
            cells.append(f"{v} ({msg})" if (c == msg_col and v) else (msg if c == msg_col else v))
        elif failed:
            cells.append(msg if c == msg_col else "")
        elif c == "fwd ms":
            cells.append(_fmt_ms(row["fwd_ms"]))
        elif c == "fwd+bwd ms":
            cells.append(_fmt_ms(row["fwd_bwd_ms"]))
        elif c.startswith("vs reference"):
            cells.append(_pair(row.get("speedup_vs_reference_fwd"), row.get("speedup_vs_reference_fwd_bwd"), _fmt_x))
        elif c.startswith("vs mamba_ssm"):
            cells.append(_pair(row.get("speedup_vs_mamba_ssm_fwd"), row.get("speedup_vs_mamba_ssm_fwd_bwd"), _fmt_x))
        elif c == "rel err y":
            cells.append(_fmt_err((row.get("rel_err") or {}).get("y")))
        elif c == "max rel err grad":
            m = _max_grad_err(row)
            cells.append(f"{_fmt_err(m[1])} ({m[0]})" if m else ("not checked" if row.get("rel_err") else "-"))
    return cells


def render_table(rows: list[dict], title: str | None = "Selective scan backends"):
    """A rich Table: one line per (shape, backend, dtype)."""
    from rich.table import Table
    from rich.text import Text

    cols = table_columns(rows)
    table = Table(title=title)
    for c in cols:
        table.add_column(c, justify="left" if c in ("shape", "backend", "dtype") else "right")
    for r in rows:
        table.add_row(*(Text(c) for c in table_cells(r, cols)))  # Text: no markup in error messages
    return table


def render_check_table(rows: list[dict], title: str | None = "Relative error vs reference (fp32 inputs)"):
    """A rich Table of every checked output/gradient error, or None when nothing was checked."""
    from rich.table import Table

    checked = [r for r in rows if r.get("rel_err")]
    if not checked:
        return None
    keys = [k for k in ERR_KEYS if any(k in r["rel_err"] for r in checked)]
    table = Table(title=title)
    for c in ("shape", "backend", "dtype"):
        table.add_column(c)
    for k in keys:
        table.add_column(k, justify="right")
    for r in checked:
        table.add_row(r["shape"], r["backend"], r["dtype"], *(_fmt_err(r["rel_err"].get(k)) for k in keys))
    return table


def notes(rows: list[dict]) -> list[str]:
    seen, out = set(), []
    for r in rows:
        n = r.get("check_note")
        if n and (r["shape"], n) not in seen:
            seen.add((r["shape"], n))
            out.append(f"{r['shape']}: {n}")
    return out


def to_markdown(rows: list[dict]) -> str:
    """The main table as GitHub markdown (for docs/benchmarks.md)."""
    cols = table_columns(rows)
    right = [c not in ("shape", "backend", "dtype") for c in cols]
    lines = ["| " + " | ".join(cols) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(table_cells(r, cols)) + " |")
    return "\n".join(lines)


def _progress_line(row: dict) -> str:
    head = f"{row['shape']} {row['backend']} {row['dtype']}:"
    if row["status"] != "ok":
        return f"{head} {row['status']} {row['error'] or ''}".rstrip()
    out = f"{head} fwd {_fmt_ms(row['fwd_ms'])} ms, fwd+bwd {_fmt_ms(row['fwd_bwd_ms'])} ms"
    if row.get("rel_err"):
        out += f", rel err y {_fmt_err(row['rel_err']['y'])}"
    return out


class _NoProgress:
    """Stand-in for rich.progress.Progress when progress is off: lines still go to stderr."""

    def __init__(self):
        self.console = make_console(stderr=True, quiet=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *a, **k):
        return 0

    def update(self, *a, **k):
        pass

    def advance(self, *a, **k):
        pass


def _make_progress(enabled: bool):
    if not enabled:
        return _NoProgress()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=make_console(stderr=True), transient=True)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_busy_fraction(interval: float = 0.5) -> float | None:
    """Share of all CPUs' time spent busy over `interval` seconds (Linux /proc/stat), or None."""
    def read():
        with open("/proc/stat") as f:
            vals = [int(v) for v in f.readline().split()[1:]]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
        return idle, sum(vals)
    try:
        i0, t0 = read()
        time.sleep(interval)
        i1, t1 = read()
    except (OSError, ValueError, IndexError):
        return None
    return round(1.0 - (i1 - i0) / (t1 - t0), 3) if t1 > t0 else None


def _warn_if_busy(console, busy: float | None) -> None:
    """CPU timings on a machine that other processes keep busy are not worth much (and torch's
    OpenMP threads degrade badly when oversubscribed): say so."""
    if busy is not None and busy > 0.25:
        console.print(f"[yellow]warning: the CPUs were {busy:.0%} busy just before the run: other processes "
                      f"compete for them, timings will be noisy[/]")


def make_console(stderr: bool = False, **kw):
    """A rich Console; when the output is not a terminal (CI logs, pipes) it is 160 columns wide instead
    of rich's 80, so that the tables are not squeezed."""
    from rich.console import Console

    console = Console(stderr=stderr, **kw)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=160, **kw)
    return console


def report(rows: list[dict], console=None) -> None:
    """Print the tables (and check notes) to a rich console."""
    console = console or make_console()
    console.print(render_table(rows))
    check = render_check_table(rows)
    if check is not None:
        console.print(check)
    for n in notes(rows):
        console.print(f"note: {n}", markup=False, highlight=False)


def run_and_report(shapes: Sequence[str | ScanShape], backends: Sequence[str], dtypes: Sequence[str],
                   device: str, repeats: int, warmup: int, check: bool, json_path: str | os.PathLike | None,
                   *, seed: int = 0, progress: bool = True, markdown: bool = False,
                   argv: Sequence[str] | None = None, layout: str = "channel-major") -> int:
    """What tools/bench_kernels.py runs: benchmark, print, save JSON. Returns the exit status
    (1 when a row failed with an error other than OOM)."""
    console = make_console()
    meta = collect_metadata(device, argv)
    meta.update(repeats=repeats, warmup=warmup, seed=seed, layout=layout)
    console.print(f"[bold]selective scan benchmark[/] on {meta['device_name']} "
                  f"(torch {meta['torch']}, triton {meta['triton']}, {meta['threads']} threads)")
    meta["loadavg_start"] = _loadavg()
    if device == "cpu":
        meta["cpu_busy_before"] = cpu_busy_fraction()
        _warn_if_busy(console, meta["cpu_busy_before"])
    rows = run_benchmark(shapes, backends, dtypes, device, repeats, warmup, check, seed=seed, progress=progress,
                         layout=layout)
    meta["loadavg_end"] = _loadavg()
    report(rows, console)
    if markdown:
        console.print(to_markdown(rows), markup=False, highlight=False, soft_wrap=True)
    if json_path:
        path = write_json(json_path, rows, meta)
        console.print(f"wrote {path}", markup=False, highlight=False)
    failed = [r for r in rows if r["status"] == "error"]
    if failed:
        console.print(f"[red]{len(failed)} row(s) failed[/]")
        return 1
    return 0
