"""Prepared for the next session with device time (not run on a GPU; `--smoke` runs under the interpreter).

What is left of the N = 16 chunked backward once occupancy, the atomics and the softplus recompute are ruled
out (session 9)?  Times diagnostic variants, built from kernels/selective/triton_fused.py by text
substitution, each with one piece of per-state work removed (their gradients are WRONG; timing only):
- "no-fwd-scan": h_{t-1} without its exclusive scan (the pairs' second element used as is);
- "no-adj-scan": the adjoint g without its reverse scan (C dy used as is);
- "no-scans": both;
- "no-B0-load": B of step t - 1 shuffled from this step's B (tl.gather) instead of loaded -- a real candidate,
  its error against shipped is printed.
On the device:  python docs/results/gpu_h100_2026-12-07_session9/scripts/next_bwd_scan_diag.py  (~1 min;
writes $OUT/next_bwd_scan_diag.json)."""
import argparse, importlib.util, json, os, time

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true")
args = ap.parse_args()
if args.smoke:
    os.environ["TRITON_INTERPRET"] = "1"
import torch  # noqa: E402
import triton  # noqa: E402
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs, rel_err  # noqa: E402

ROOT = os.path.abspath(__file__).rsplit("/docs/", 1)[0]
SRC = open(f"{ROOT}/kernels/selective/triton_fused.py").read()
for rel, absolute in (("from . import triton_blocked", "from vision_mamba.kernels.selective import triton_blocked"),
                      ("from ._common", "from vision_mamba.kernels.selective._common"),
                      ("from ._triton_common", "from vision_mamba.kernels.selective._triton_common")):
    SRC = SRC.replace(rel, absolute)
FWD_SCAN = ("cum, local = tl.associative_scan((tl.exp2(dt0 * a2), dtu0 * B0), 0, _first_order)",
            "cum, local = tl.exp2(dt0 * a2), dtu0 * B0")
ADJ_SCAN = ("cum_r, g_local = tl.associative_scan((tl.exp2(dt1 * a2), Cn * dy), 0, _first_order, reverse=True)",
            "cum_r, g_local = tl.exp2(dt1 * a2), Cn * dy")
B0_LOAD = ("B0 = tl.load(B_base + n * sB_n + tm0 * sB_t, mask=prev & (t - 1 < L), other=0.0).to(tl.float32)",
           "B0 = tl.where(prev, tl.gather(Bn, tl.maximum(offs - 1, 0), 0), 0.0)")
VARIANTS = {"shipped": [], "no-fwd-scan": [FWD_SCAN], "no-adj-scan": [ADJ_SCAN], "no-scans": [FWD_SCAN, ADJ_SCAN],
            "no-B0-load": [B0_LOAD]}


def variant(name, subs):
    src = SRC
    for old, new in subs:           # every substitution must find its text, so a changed kernel fails here
        assert src.count(old) == 1, f"triton_fused.py changed: update {old!r}"
        src = src.replace(old, new)
    path = f"/tmp/tf_diag_{name.replace('-', '_')}.py"
    open(path, "w").write(src)
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench(fn):
    if args.smoke:
        fn()
        return float("nan")
    return triton.testing.do_bench(fn, warmup=25, rep=150, return_mode="median")


if args.smoke:
    device, dtype = "cpu", torch.float32
    shapes = [ScanShape("smoke_n16", 1, 4, 300, 16, 1, True)]
else:
    device, dtype = "cuda", torch.bfloat16
    shapes = [SHAPES[n] for n in ("vim_s_layer", "vim_s_1024", "long")]
mods = {name: variant(name, subs) for name, subs in VARIANTS.items()}
rows = []
for shape in shapes:
    ins = make_inputs(shape, dtype, device, seed=4)
    dout = torch.randn_like(ins["u"])
    _, ck = mods["shipped"].forward(**ins, delta_softplus=True)
    ref = mods["shipped"].backward(dout, None, **ins, checkpoints=ck, delta_softplus=True)
    for name, mod in mods.items():
        got = mod.backward(dout, None, **ins, checkpoints=ck, delta_softplus=True)
        err = max(rel_err(a, b) for a, b in zip(got, ref) if a is not None)
        ms = bench(lambda: mod.backward(dout, None, **ins, checkpoints=ck, delta_softplus=True))
        rows.append(dict(shape=shape.name, variant=name, bwd_ms=ms, max_rel_err_vs_shipped=err))
        print(f"{shape.name:14s} {name:12s} bwd {ms:8.3f} ms   max rel err vs shipped {err:.1e}", flush=True)
json.dump(dict(device=torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter)",
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, rows=rows),
          open(f"{os.environ.get('OUT', '/tmp')}/next_bwd_scan_diag.json", "w"), indent=1)
