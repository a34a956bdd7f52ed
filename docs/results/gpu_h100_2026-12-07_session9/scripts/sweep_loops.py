"""Loop-schedule sweep of the chunked scan (forward and backward), variants by text substitution of
kernels/selective/triton_fused.py: unrolled / pipelined state loops, the neighbour steps' dt shuffled
(b_gather, shipped since 36b34e1) and a softplus diagnostic.  Run in session 9 (call B) from scratch/ against
the kernel at e31b49d; the substitutions expect that source, so against a later kernel it stops at its asserts.
Changed since the run: an unused helper removed, the repository root found from docs/.
Writes $OUT/sweep_loops.json.  --smoke: interpreter, tiny shapes."""
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
head, bwd_part = SRC.split("def _bwd_kernel(")
F_CHUNK, F_STATE = "    for c in range(n_chunks):\n", "        for n in range(N):\n"
B_CHUNK, B_STATE = "    for ci in range(n_chunks):\n", "        for n in range(N):\n"
assert head.count(F_CHUNK) == 1 and head.count(F_STATE) == 1
assert bwd_part.count(B_CHUNK) == 1 and bwd_part.count(B_STATE) == 1


VARIANTS = {  # name: (kind, head_sub, bwd_sub)
    "shipped": ("both", None, None),
    "f_state_u2": ("fwd", (F_STATE, "tl.range", ", loop_unroll_factor=2"), None),
    "f_state_s2": ("fwd", (F_STATE, "tl.range", ", num_stages=2"), None),
    "b_state_u2": ("bwd", None, (B_STATE, "tl.range", ", loop_unroll_factor=2")),
    "b_state_u4": ("bwd", None, (B_STATE, "tl.range", ", loop_unroll_factor=4")),
    "b_state_s2": ("bwd", None, (B_STATE, "tl.range", ", num_stages=2")),
}
# dt of logical steps t +- 1 by a warp shuffle (tl.gather) of this chunk's dt instead of reloading it and
# recomputing its softplus; the step after the chunk's last is carried from the previous iteration
GATHER = [
    ("        dt1, _ = _load_dt(delta_ptr, bias, row_dt + tm1, t + 1 < L, SOFTPLUS)   # a_{t+1}: 1 past the end\n",
     "        dt1 = tl.where(offs == BLOCK_L - 1, dt_next, tl.gather(dt, tl.minimum(offs + 1, BLOCK_L - 1), 0))\n"),
    ("        dt0, _ = _load_dt(delta_ptr, bias, row_dt + tm0, prev & (t - 1 < L), SOFTPLUS)\n"
     "        dtu0 = dt0 * tl.load(u_ptr + row_u + tm0, mask=prev & (t - 1 < L), other=0.0).to(tl.float32)\n",
     "        dt0 = tl.where(prev, tl.gather(dt, tl.maximum(offs - 1, 0), 0), 0.0)\n"
     "        dtu0 = tl.where(prev, tl.gather(dtu, tl.maximum(offs - 1, 0), 0), 0.0)\n"),
    ("    for ci in range(n_chunks):\n", "    dt_next = 0.0\n    for ci in range(n_chunks):\n"),
    ("        tl.store(ddelta_ptr + row + tm, ddt.to(ddelta_ptr.dtype.element_ty), mask=mask)\n",
     "        tl.store(ddelta_ptr + row + tm, ddt.to(ddelta_ptr.dtype.element_ty), mask=mask)\n"
     "        dt_next = tl.sum(tl.where(offs == 0, dt, 0.0), axis=0)\n"),
]
# timing diagnostic only (wrong ddelta / dA): t +- 1 reloaded without the softplus, to size its share
SP_ONCE = [("row_dt + tm1, t + 1 < L, SOFTPLUS)", "row_dt + tm1, t + 1 < L, False)"),
           ("row_dt + tm0, prev & (t - 1 < L), SOFTPLUS)", "row_dt + tm0, prev & (t - 1 < L), False)")]
VARIANTS["b_gather"] = ("bwd", None, "GATHER")
VARIANTS["diag_sp_once"] = ("bwd", None, "SP_ONCE")
STATE_ONLY = {"f_state_u2", "f_state_s2", "b_state_u2", "b_state_u4", "b_state_s2"}


def build(name, hs, bs):
    h, b = head, bwd_part
    if hs:
        old, fn, extra = hs
        h = h.replace(old, old.replace("range(", fn + "(", 1).replace("):", extra + "):"))
    if bs in ("GATHER", "SP_ONCE"):
        for old, new in (GATHER if bs == "GATHER" else SP_ONCE):
            assert b.count(old) == 1, (name, old)
            b = b.replace(old, new)
    elif bs:
        old, fn, extra = bs
        b = b.replace(old, old.replace("range(", fn + "(", 1).replace("):", extra + "):"))
    src = h + "def _bwd_kernel(" + b
    assert (src != SRC) == (name != "shipped"), name
    path = f"/tmp/tf_loops_{name}.py"
    open(path, "w").write(src)
    spec = importlib.util.spec_from_file_location(f"tf_loops_{name}", path)
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
    shapes = [ScanShape("smoke_n16", 1, 4, 300, 16, 1, True), ScanShape("smoke_n1", 1, 8, 300, 1, 4, False)]
else:
    device, dtype = "cuda", torch.bfloat16
    shapes = [SHAPES[n] for n in ("vim_s_layer", "vim_s_1024", "vmamba_t_stage1", "long")] + [
        ScanShape("vmamba_t_train_stage1", 128, 768, 3136, 1, 4, False)]
mods = {name: (kind, build(name, hs, bs)) for name, (kind, hs, bs) in VARIANTS.items()}
rows = []
for shape in shapes:
    ins = make_inputs(shape, dtype, device, seed=3)
    dout = torch.randn_like(ins["u"])
    base = mods["shipped"][1]
    y_ref, ck = base.forward(**ins, delta_softplus=True)
    g_ref = base.backward(dout, None, **ins, checkpoints=ck, delta_softplus=True)
    for name, (kind, mod) in mods.items():
        if name in STATE_ONLY and shape.N == 1:
            continue
        if kind in ("both", "fwd"):
            y, ck2 = mod.forward(**ins, delta_softplus=True)
            err = max(rel_err(y, y_ref), rel_err(ck2, ck))
            ms = bench(lambda: mod.forward(**ins, delta_softplus=True))
            rows.append(dict(shape=shape.name, variant=name, part="fwd", ms=ms, max_rel_err_vs_shipped=err))
            print(f"{shape.name:22s} {name:12s} fwd {ms:8.3f} ms  err {err:.1e}", flush=True)
        if kind in ("both", "bwd"):
            g = mod.backward(dout, None, **ins, checkpoints=ck, delta_softplus=True)
            err = max(rel_err(a, b) for a, b in zip(g, g_ref) if a is not None)
            ms = bench(lambda: mod.backward(dout, None, **ins, checkpoints=ck, delta_softplus=True))
            rows.append(dict(shape=shape.name, variant=name, part="bwd", ms=ms, max_rel_err_vs_shipped=err))
            print(f"{shape.name:22s} {name:12s} bwd {ms:8.3f} ms  err {err:.1e}", flush=True)
json.dump(dict(device=torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter)",
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, rows=rows), open(f"{os.environ.get('OUT', '/tmp')}/sweep_loops.json", "w"),
          indent=1)
