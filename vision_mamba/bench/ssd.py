"""Benchmark of the SSD scan (Mamba-2) against the selective scan (Mamba-1) at matched state size, with
the SSD backends' errors against the sequential reference measured in the same run.

Library side of `tools/bench_ssd.py`:

    rows = run_benchmark(["vim_s_layer"], ["torch", "triton"], ["bf16"], "cuda", repeats=50, warmup=10, check=True)
    report(rows)

Shapes are the selective-scan benchmark's (`vision_mamba.bench.kernels.SHAPES`, (batch, dim, L, N, G)),
mapped to SSD with dim = heads * headdim: the same batch, channels, length, state size N per channel
and B/C groups, so both scans hold batch * dim * N states; what differs is that SSD's decay is one
scalar per head instead of one per (channel, state).  Inputs as the models call the scans: D,
dt_bias and dt_softplus=True, and z where the shape has it.  Timing is `vision_mamba.bench.kernels`'
(median of `repeats` calls after `warmup`; fwd under no_grad; fwd+bwd = forward + torch.autograd.grad
w.r.t. every float input with a fixed random grad_output).  One row per (shape, dtype, scan,
backend); `speedup_vs_selective_*` = the selective scan's time / this row's time.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from vision_mamba.kernels import selective_scan, ssd_scan

from . import kernels as kb

HEADDIM = 64
CHUNK_SIZE = 64
SSD_BACKENDS = ("reference", "torch", "triton")
GRAD_NAMES = ("x", "dt", "A", "B", "C", "D", "z", "dt_bias")


@dataclass(frozen=True)
class SSDShape:
    """A selective-scan shape seen as SSD: x (batch, L, heads, headdim), B/C (batch, L, G, N)."""
    name: str
    batch: int
    heads: int
    headdim: int
    L: int
    N: int
    G: int
    z: bool

    @property
    def dim(self) -> int:
        return self.heads * self.headdim

    def describe(self) -> str:
        return (f"b={self.batch} L={self.L} heads={self.heads}x{self.headdim} N={self.N} G={self.G}"
                + (" z" if self.z else ""))


def ssd_shape(shape: kb.ScanShape, headdim: int = HEADDIM) -> SSDShape:
    if shape.dim % headdim:
        raise ValueError(f"shape {shape.name!r}: headdim={headdim} does not divide dim={shape.dim}")
    heads = shape.dim // headdim
    if heads % shape.G:
        raise ValueError(f"shape {shape.name!r}: G={shape.G} groups do not divide the {heads} heads of "
                         f"headdim {headdim}")
    return SSDShape(shape.name, shape.batch, heads, headdim, shape.L, shape.N, shape.G, shape.z)


def make_ssd_inputs(shape: SSDShape, dtype: torch.dtype, device: str, seed: int = 0) -> dict:
    """x, z, B, C ~ randn and dt ~ 0.5 randn in `dtype`; A = -exp(0.5 randn), D ~ randn and
    dt_bias ~ 0.5 randn - 2 in fp32 (the selective benchmark's distributions)."""
    g = torch.Generator(device=device).manual_seed(seed)
    b, L, H, P, N, G = shape.batch, shape.L, shape.heads, shape.headdim, shape.N, shape.G

    def randn(*size, dt=dtype):
        return torch.randn(*size, generator=g, device=device, dtype=torch.float32).to(dt)

    return {"x": randn(b, L, H, P), "dt": (0.5 * randn(b, L, H, dt=torch.float32)).to(dtype),
            "A": -torch.exp(0.5 * randn(H, dt=torch.float32)), "B": randn(b, L, G, N), "C": randn(b, L, G, N),
            "D": randn(H, dt=torch.float32), "z": randn(b, L, H, P) if shape.z else None,
            "dt_bias": 0.5 * randn(H, dt=torch.float32) - 2.0}


def ssd_fn(backend: str, chunk_size: int) -> Callable:
    def fn(**kw):
        return ssd_scan(**kw, chunk_size=chunk_size, dt_softplus=True, backend=backend)
    return fn


def selective_fn(backend: str) -> Callable:
    def fn(**kw):
        return selective_scan(**kw, delta_softplus=True, backend=backend)
    return fn


def _leaves(inputs: dict) -> dict:
    return {k: v.detach().clone().requires_grad_(True) for k, v in inputs.items() if v is not None}


def _fwd_bwd(fn: Callable, inputs: dict, grad_out: torch.Tensor) -> tuple[torch.Tensor, dict]:
    leaves = _leaves(inputs)
    y = fn(**leaves)
    return y.detach(), dict(zip(leaves, torch.autograd.grad(y, list(leaves.values()), grad_out)))


def _time(fn: Callable, inputs: dict, grad_out: torch.Tensor, repeats: int, warmup: int, device: str) -> dict:
    def fwd():
        with torch.no_grad():
            return fn(**inputs)
    fwd_times = kb.time_fn(fwd, repeats, warmup, device)
    leaves = _leaves(inputs)
    targets = list(leaves.values())

    def fwd_bwd():
        return torch.autograd.grad(fn(**leaves), targets, grad_out)
    fwd_bwd_times = kb.time_fn(fwd_bwd, repeats, warmup, device)
    return dict(fwd_ms=statistics.median(fwd_times), fwd_bwd_ms=statistics.median(fwd_bwd_times),
                fwd_times_ms=fwd_times, fwd_bwd_times_ms=fwd_bwd_times, repeats=repeats, warmup=warmup)


def _row(shape: SSDShape, scan: str, backend: str, dtype: str, device: str, chunk_size: int | None) -> dict:
    return {"shape": shape.name, "scan": scan, "backend": backend, "dtype": dtype, "device": device,
            "batch": shape.batch, "dim": shape.dim, "L": shape.L, "N": shape.N, "G": shape.G, "z": shape.z,
            "heads": shape.heads if scan == "ssd" else None, "headdim": shape.headdim if scan == "ssd" else None,
            "chunk_size": chunk_size, "status": "ok", "error": None, "fwd_ms": None, "fwd_bwd_ms": None}


def _guarded(row: dict, work: Callable[[], dict], device: str) -> None:
    """Run `work`, put its results in the row; an OOM or an error is recorded, not raised."""
    try:
        row.update(work())
    except Exception as exc:  # noqa: BLE001 - one failing row must not lose the run
        if kb._is_oom(exc):
            row.update(status="OOM", error="OOM")
        else:
            row.update(status="error", error=f"{type(exc).__name__}: {exc}".strip())
    finally:
        kb._free(device)


def run_benchmark(shapes: Sequence[str], ssd_backends: Sequence[str], dtypes: Sequence[str], device: str,
                  repeats: int, warmup: int, check: bool = False, *, headdim: int = HEADDIM,
                  chunk_size: int = CHUNK_SIZE, selective_backend: str | None = None, seed: int = 0,
                  progress: bool = True) -> list[dict]:
    """Time ssd_scan on every backend in `ssd_backends` and selective_scan (`selective_backend`, default
    triton on CUDA, torch on CPU) on each shape and dtype; with `check`, also the relative error of
    every SSD row's y and gradients against the SSD reference on fp32 copies of the inputs."""
    scan_shapes = kb.resolve_shapes(shapes)
    pairs = [(s, ssd_shape(s, headdim)) for s in scan_shapes]
    unknown = [b for b in ssd_backends if b not in SSD_BACKENDS]
    if unknown:
        raise ValueError(f"unknown SSD backend(s) {unknown}; choose from {', '.join(SSD_BACKENDS)}")
    kb.validate([b for b in ssd_backends if b != "reference"], dtypes, device)
    selective_backend = selective_backend or ("triton" if device == "cuda" else "torch")
    console = kb.make_console(stderr=True, quiet=not progress)
    rows = []
    for scan_shape, shape in pairs:
        for dtype_name in dtypes:
            dtype = kb.DTYPES[dtype_name]
            g = torch.Generator(device=device).manual_seed(seed + 1)
            # selective scan at the same (batch, dim, L, N, G)
            row = _row(shape, "selective_scan", selective_backend, dtype_name, device, None)
            sel_inputs = kb.make_inputs(scan_shape, dtype, device, seed)
            sel_grad = torch.randn(shape.batch, shape.dim, shape.L, generator=g, device=device).to(dtype)
            _guarded(row, lambda: _time(selective_fn(selective_backend), sel_inputs, sel_grad, repeats, warmup,
                                        device), device)
            rows.append(row)
            console.print(_line(row), markup=False, highlight=False)
            del sel_inputs, sel_grad

            inputs = make_ssd_inputs(shape, dtype, device, seed)
            grad_out = torch.randn(shape.batch, shape.L, shape.heads, shape.headdim, generator=g,
                                   device=device).to(dtype)
            ref = None
            if check:
                up = {k: (v.float() if v is not None else None) for k, v in inputs.items()}
                ref = _fwd_bwd(ssd_fn("reference", chunk_size), up, grad_out.float())
            for backend in ssd_backends:
                row = _row(shape, "ssd", backend, dtype_name, device, chunk_size)
                is_ref = backend == "reference"
                reps, warm = (min(repeats, max(3, repeats // 5)), min(warmup, 1)) if is_ref else (repeats, warmup)
                fn = ssd_fn(backend, chunk_size)

                def work():
                    out = _time(fn, inputs, grad_out, reps, warm, device)
                    if ref is not None:
                        y, grads = _fwd_bwd(fn, inputs, grad_out)
                        out["rel_err"] = {"y": kb.rel_err(y, ref[0]),
                                          **{f"d{k}": kb.rel_err(grads[k], ref[1][k]) for k in ref[1]}}
                    return out
                _guarded(row, work, device)
                rows.append(row)
                console.print(_line(row), markup=False, highlight=False)
            del inputs, grad_out, ref
            kb._free(device)
    add_speedups(rows)
    return rows


def add_speedups(rows: list[dict]) -> None:
    """speedup_vs_selective_{fwd,fwd_bwd} = selective_scan's time / the row's, same shape and dtype."""
    base = {(r["shape"], r["dtype"]): r for r in rows if r["scan"] == "selective_scan" and r["status"] == "ok"}
    for r in rows:
        b = base.get((r["shape"], r["dtype"]))
        for kind in ("fwd", "fwd_bwd"):
            t, tb = r.get(f"{kind}_ms"), (b or {}).get(f"{kind}_ms")
            r[f"speedup_vs_selective_{kind}"] = (tb / t) if (t and tb) else None


def _line(row: dict) -> str:
    head = f"{row['shape']} {row['scan']} {row['backend']} {row['dtype']}:"
    if row["status"] != "ok":
        return f"{head} {row['status']} {row['error'] or ''}".rstrip()
    out = f"{head} fwd {kb._fmt_ms(row['fwd_ms'])} ms, fwd+bwd {kb._fmt_ms(row['fwd_bwd_ms'])} ms"
    return out + (f", rel err y {kb._fmt_err(row['rel_err']['y'])}" if row.get("rel_err") else "")


COLUMNS = ("shape", "scan", "backend", "dtype", "fwd ms", "fwd+bwd ms", "vs selective (fwd / fwd+bwd)",
           "rel err y", "max rel err grad")


def table_cells(row: dict) -> list[str]:
    failed = row["status"] != "ok"
    grads = {k: v for k, v in (row.get("rel_err") or {}).items() if k != "y"}
    worst = max(grads, key=grads.get) if grads else None
    return [row["shape"], row["scan"], row["backend"], row["dtype"],
            row["status"] if failed else kb._fmt_ms(row["fwd_ms"]),
            (row["error"] or "") if failed else kb._fmt_ms(row["fwd_bwd_ms"]),
            kb._pair(row.get("speedup_vs_selective_fwd"), row.get("speedup_vs_selective_fwd_bwd"), kb._fmt_x),
            kb._fmt_err((row.get("rel_err") or {}).get("y")),
            f"{kb._fmt_err(grads[worst])} ({worst})" if worst else "-"]


def to_markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|---|---|---|---|" + "---:|" * (len(COLUMNS) - 4)]
    return "\n".join(lines + ["| " + " | ".join(table_cells(r)) + " |" for r in rows])


def report(rows: list[dict], console=None) -> None:
    from rich.table import Table
    from rich.text import Text

    console = console or kb.make_console()
    table = Table(title="SSD scan vs selective scan (matched state size)")
    for c in COLUMNS:
        table.add_column(c, justify="left" if c in COLUMNS[:4] else "right")
    for r in rows:
        table.add_row(*(Text(c) for c in table_cells(r)))
    console.print(table)


def run_and_report(shapes, ssd_backends, dtypes, device, repeats, warmup, check, json_path, *, headdim=HEADDIM,
                   chunk_size=CHUNK_SIZE, selective_backend=None, seed=0, progress=True, markdown=False,
                   argv=None) -> int:
    """What tools/bench_ssd.py runs: benchmark, print, save JSON; 1 when a row failed (not OOM)."""
    console = kb.make_console()
    meta = kb.collect_metadata(device, argv)
    meta.update(repeats=repeats, warmup=warmup, seed=seed, headdim=headdim, chunk_size=chunk_size,
                inputs=("x, z, B, C ~ randn, dt ~ 0.5*randn (benchmark dtype); A = -exp(0.5*randn) (per head for "
                        "SSD, per (channel, state) for the selective scan), D ~ randn, dt_bias ~ 0.5*randn - 2 "
                        "(fp32); softplus on"))
    console.print(f"[bold]SSD vs selective scan[/] on {meta['device_name']} (torch {meta['torch']}, "
                  f"triton {meta['triton']})")
    rows = run_benchmark(shapes, ssd_backends, dtypes, device, repeats, warmup, check, headdim=headdim,
                         chunk_size=chunk_size, selective_backend=selective_backend, seed=seed, progress=progress)
    report(rows, console)
    if markdown:
        console.print(to_markdown(rows), markup=False, highlight=False, soft_wrap=True)
    if json_path:
        console.print(f"wrote {kb.write_json(json_path, rows, meta)}", markup=False, highlight=False)
    return 1 if any(r["status"] == "error" for r in rows) else 0
