"""Session 11: CPU time per call of the Triton scan's pieces on the device machine, at a tiny shape (GPU time
~ a few us, so the CPU is what is timed): the bare Triton launch of each kernel (arguments recorded from a
real call), the launchers, and fwd+bwd through the eager path (autograd.Functions) vs the custom ops, for
the selective scan, conv1d_silu and cross_scan+merge.  --smoke: interpreter."""
import json, os, statistics, sys, time
smoke = "--smoke" in sys.argv
if smoke:
    os.environ["TRITON_INTERPRET"] = "1"
import torch, triton
from vision_mamba.kernels import _tracing, cross_merge, cross_scan, selective_scan
from vision_mamba.kernels.conv1d import conv1d_silu, triton_op as conv_op
from vision_mamba.kernels.orderings import triton_op as ord_op
from vision_mamba.kernels.selective import triton_fused as tf, triton_op as sel_op

dev = "cpu" if smoke else "cuda"
N_CALLS = 20 if smoke else 1000


def cpu_us(fn):
    for _ in range(3 if smoke else 50):
        fn()
    runs = []
    for _ in range(1 if smoke else 5):
        if not smoke:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(N_CALLS):
            fn()
        runs.append((time.perf_counter() - t0) / N_CALLS * 1e6)
        if not smoke:
            torch.cuda.synchronize()
    return statistics.median(runs)


class Recorder:
    """Stands in for a @triton.jit kernel: records one launch's grid and arguments, then launches."""
    def __init__(self, kernel):
        self.kernel, self.calls = kernel, []

    def __getitem__(self, grid):
        def launch(*args, **kw):
            self.calls.append((grid, args, kw))
            return self.kernel[grid](*args, **kw)
        return launch


b, d, L, n = 1, 2, 64, 16
leaf = lambda *s: torch.randn(*s, device=dev).requires_grad_()   # noqa: E731
ins = dict(u=leaf(b, d, L), delta=leaf(b, d, L), A=(-torch.rand(d, n, device=dev) - 0.5).requires_grad_(),
           B=leaf(b, 1, n, L), C=leaf(b, 1, n, L), D=leaf(d), z=leaf(b, d, L), delta_bias=leaf(d))
rows = {}
fwd_rec, bwd_rec = Recorder(tf._fwd_kernel), Recorder(tf._bwd_kernel)
tf._fwd_kernel, tf._bwd_kernel = fwd_rec, bwd_rec
y = selective_scan(**ins, delta_softplus=True, backend="triton")
y.sum().backward()
tf._fwd_kernel, tf._bwd_kernel = fwd_rec.kernel, bwd_rec.kernel
for name, rec in (("bare launch: _fwd_kernel", fwd_rec), ("bare launch: _bwd_kernel", bwd_rec)):
    grid, args, kw = rec.calls[0]
    rows[name] = cpu_us(lambda: rec.kernel[grid](*args, **kw))
plain = {k: v.detach() for k, v in ins.items()}
rows["tf.forward (launcher)"] = cpu_us(lambda: tf.forward(**plain, delta_softplus=True))
_, ck = tf.forward(**plain, delta_softplus=True)
g = torch.randn_like(plain["u"])
rows["tf.backward (launcher)"] = cpu_us(lambda: tf.backward(g, None, **plain, checkpoints=ck, delta_softplus=True))
with torch.no_grad():
    rows["selective_scan, no_grad"] = cpu_us(lambda: selective_scan(**ins, delta_softplus=True, backend="triton"))
x4, w, bias = leaf(b, 8, 4, 4), leaf(d, 4), leaf(d)
CASES = {
    "selective_scan fwd+bwd": lambda: selective_scan(**ins, delta_softplus=True, backend="triton").sum().backward(),
    "conv1d_silu fwd+bwd": lambda: conv1d_silu(ins["u"], w, bias, backend="triton").sum().backward(),
    "cross_scan+merge fwd+bwd": lambda: cross_merge(cross_scan(x4, "cross2d", backend="triton"), "cross2d", 4, 4,
                                                    backend="triton").sum().backward(),
}
for name, fn in CASES.items():
    for path in ("custom ops", "eager"):
        for m in (sel_op, conv_op, ord_op):
            m.traced = (lambda *t: True) if path == "custom ops" else _tracing.traced
        rows[f"{name}, {path}"] = cpu_us(fn)
for k, v in rows.items():
    print(f"{k:42s} {v:8.1f} us per call")
json.dump(dict(device="cpu (interpreter)" if smoke else torch.cuda.get_device_name(), cpu_count=os.cpu_count(),
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, shape=dict(batch=b, dim=d, L=L, N=n), us_per_call=rows),
          open(os.path.join(os.environ.get("OUT", "/tmp"), "launch_cpu.json"), "w"), indent=1)
