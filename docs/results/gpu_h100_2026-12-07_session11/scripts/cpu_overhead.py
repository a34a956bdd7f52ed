"""Session 11: the Python around the Triton kernels, per call, on this machine's CPU.  The launchers are
replaced by stubs that return empty outputs of the right shapes, so only the wrappers run; each op is timed
for fwd+bwd through the custom ops (forced: what torch.compile / torch.export trace) and through the
eager path (autograd.Function).  python3 cpu_overhead.py  (CPU only, ~10 s)."""
import json, os, statistics, sys, time
os.environ["TRITON_INTERPRET"] = "1"     # the backends' device check lets CPU tensors through
import torch
from vision_mamba.kernels import _tracing, cross_merge, cross_scan, selective_scan
from vision_mamba.kernels.conv1d import conv1d_silu
from vision_mamba.kernels.conv1d import triton_kernels as conv_k, triton_op as conv_op
from vision_mamba.kernels.orderings import triton_fused as ord_f, triton_op as ord_op
from vision_mamba.kernels.selective import triton_fused as sel_f, triton_op as sel_op

sel_f.forward = lambda u, delta, A, *a, **k: (torch.empty_like(u), torch.empty(*u.shape[:2], 3, A.shape[1]))
sel_f.backward = lambda dout, dlast, *ins, **k: tuple(
    torch.empty_like(t) if t is not None else None for t in ins[:8])
conv_k.forward = lambda x, w, b, r: torch.empty_like(x)
conv_k.backward = lambda dy, x, w, b, r: (torch.empty_like(x), torch.empty_like(w), None if b is None else torch.empty_like(b))
ord_f.scan_launch = lambda x, k, h, w: x.new_empty(x.shape[0], k, x.shape[1], h * w)
ord_f.merge_launch = lambda y, k, h, w: y.new_empty(y.shape[0], y.shape[2], y.shape[3])

b, d, L, n = 2, 8, 16, 16
leaf = lambda *s: torch.randn(*s).requires_grad_()
scan_in = dict(u=leaf(b, d, L), delta=leaf(b, d, L), A=leaf(d, n), B=leaf(b, 1, n, L), C=leaf(b, 1, n, L),
               D=leaf(d), z=leaf(b, d, L), delta_bias=leaf(d))
x4, w, bias = leaf(b, d, 4, 4), leaf(d, 4), leaf(d)
CASES = {
    "selective_scan": lambda: selective_scan(**scan_in, delta_softplus=True, backend="triton"),
    "conv1d_silu": lambda: conv1d_silu(scan_in["u"], w, bias, backend="triton"),
    "cross_scan + cross_merge": lambda: cross_merge(cross_scan(x4, "cross2d", backend="triton"), "cross2d", 4, 4,
                                                    backend="triton"),
}
MODS = (sel_op, conv_op, ord_op)
rows = []
for name, fn in CASES.items():
    for path in ("custom ops", "eager"):
        for m in MODS:
            m.traced = (lambda *t: True) if path == "custom ops" else _tracing.traced
        def step():
            fn().sum().backward()
        for _ in range(100):
            step()
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(300):
                step()
            runs.append((time.perf_counter() - t0) / 300 * 1e6)
        rows.append(dict(op=name, path=path, us_per_fwd_bwd=statistics.median(runs)))
        print(f"{name:26s} {path:10s} {rows[-1]['us_per_fwd_bwd']:7.1f} us per fwd+bwd (median of 5 x 300)")
json.dump(dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               cpu=os.uname().machine, note="stubbed launchers; includes the .sum().backward() around the op",
               rows=rows), open(os.path.join(os.environ.get("OUT", "/tmp"), "cpu_overhead.json"), "w"), indent=1)
