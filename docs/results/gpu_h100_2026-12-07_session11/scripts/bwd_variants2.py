"""Session 11: N=16 chunked backward variants (text substitutions of kernels/selective/triton_fused.py), timed
against the shipped kernel in one process, with the max relative error of every gradient vs shipped.
Session 10 cut the adjoint scan's shuffles (fwdrev: 213 -> 145 SHFL) without a gain, so the state loop looks
latency-bound (one warp per program, each state a chain of loads -> exp2 -> two scans -> atomics):
- unroll2 / unroll4: the backward's state loop unrolled (independent states interleave), as the forward's;
- fwdrev_unroll2: both;  stages2: the state loop software-pipelined (loads of state n+1 issued early).
--smoke: interpreter, tiny shapes."""
import importlib.util, json, os, sys, time
if "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"
import torch, triton
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs, rel_err

smoke = "--smoke" in sys.argv
# run as scratch/bwd_variants.py (call C); the repository root is the first parent holding kernels/
ROOT = next(p for p in (os.path.dirname(os.path.abspath(__file__)).rsplit("/", k)[0] for k in range(1, 6))
            if os.path.isdir(os.path.join(p, "kernels")))
SRC = open(f"{ROOT}/kernels/selective/triton_fused.py").read()
for rel, absolute in (("from . import triton_blocked", "from vision_mamba.kernels.selective import triton_blocked"),
                      ("from ._common", "from vision_mamba.kernels.selective._common"),
                      ("from ._triton_common", "from vision_mamba.kernels.selective._triton_common")):
    SRC = SRC.replace(rel, absolute)
PRE = ("        for n in range(N):\n            a = tl.load(A_ptr + d * N + n)",
       "        rev = BLOCK_L - 1 - offs\n"
       "        t_r = c * BLOCK_L + rev\n"
       "        mask_r = t_r < L\n"
       "        tm_r = _mem(t_r, L, REVERSE)\n"
       "        dt1_r = tl.gather(dt1, rev, 0)\n"
       "        dy_r = tl.gather(dy, rev, 0)\n"
       "        for n in range(N):\n            a = tl.load(A_ptr + d * N + n)")
ADJ = ("            cum_r, g_local = tl.associative_scan((tl.exp2(dt1 * a2), Cn * dy), 0, _first_order, reverse=True)\n"
       "            g = g_local + cum_r * tl.load(gcarry + n)\n"
       "            tl.store(gcarry + n + offs * 0, g, mask=offs == 0)\n",
       "            Cn_r = tl.load(C_base + n * sC_n + tm_r * sC_t, mask=mask_r, other=0.0).to(tl.float32)\n"
       "            cum_r, g_local = tl.associative_scan((tl.exp2(dt1_r * a2), Cn_r * dy_r), 0, _first_order)\n"
       "            g_r = g_local + cum_r * tl.load(gcarry + n)\n"
       "            tl.store(gcarry + n + offs * 0, g_r, mask=offs == BLOCK_L - 1)\n"
       "            g = tl.gather(g_r, rev, 0)\n")
ADJ_FLIP = (ADJ[0], ADJ[1].replace("tl.gather(g_r, rev, 0)", "tl.flip(g_r, 0)"))
PRE_FLIP = (PRE[0], PRE[1].replace("tl.gather(dt1, rev, 0)", "tl.flip(dt1, 0)").replace("tl.gather(dy, rev, 0)", "tl.flip(dy, 0)"))

def _loop(spec):
    return (LOOP, LOOP.replace("for n in range(N):", f"for n in tl.range(N, {spec}):"))


LOOP = "        for n in range(N):\n            a = tl.load(A_ptr + d * N + n)"
PRE_U2 = (PRE[0], PRE[1].replace("for n in range(N):", "for n in tl.range(N, loop_unroll_factor=2):"))
VARIANTS = {"shipped": [], "unroll2": [_loop("loop_unroll_factor=2")], "unroll4": [_loop("loop_unroll_factor=4")],
            "fwdrev_unroll2": [PRE_U2, ADJ], "stages2": [_loop("num_stages=2")]}


def variant(name, subs):
    src = SRC
    for old, new in subs:
        assert src.count(old) == 1, f"triton_fused.py changed: update {old[:60]!r}"
        src = src.replace(old, new)
    path = f"/tmp/tf_var_{name}.py"
    open(path, "w").write(src)
    spec = importlib.util.spec_from_file_location(f"tf_var_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench(fn):
    if smoke:
        fn(); return float("nan")
    return triton.testing.do_bench(fn, warmup=25, rep=150, return_mode="median")


if smoke:
    dev, dtype = "cpu", torch.float32
    shapes = [ScanShape("s_n16", 1, 2, 300, 16, 1, True)]
else:
    dev, dtype = "cuda", torch.bfloat16
    shapes = [SHAPES[n] for n in ("vim_s_layer", "vim_s_1024", "long")]
mods = {k: variant(k, v) for k, v in VARIANTS.items()}
rows = []
for shape in shapes:
    for reverse in ([False, True] if smoke else [False]):
        ins = make_inputs(shape, dtype, dev, seed=4)
        dout = torch.randn_like(ins["u"])
        kw = dict(delta_softplus=True, reverse=reverse, kernel="chunked")
        _, ck = mods["shipped"].forward(**ins, **kw)
        ref = mods["shipped"].backward(dout, None, **ins, checkpoints=ck, **kw)
        for name, mod in mods.items():
            got = mod.backward(dout, None, **ins, checkpoints=ck, **kw)
            err = max(rel_err(a.float(), b.float()) for a, b in zip(got, ref) if a is not None)
            ms = bench(lambda: mod.backward(dout, None, **ins, checkpoints=ck, **kw))
            rows.append(dict(shape=shape.name, reverse=reverse, variant=name, bwd_ms=ms, max_rel_err_vs_shipped=err))
            print(f"{shape.name:16s} rev={int(reverse)} {name:12s} bwd {ms:8.3f} ms  max rel err vs shipped {err:.1e}", flush=True)
json.dump(dict(device=torch.cuda.get_device_name() if dev == "cuda" else "cpu (interpreter)",
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, rows=rows), open(f"{os.environ.get('OUT', '/tmp')}/bwd_variants2.json", "w"), indent=1)
