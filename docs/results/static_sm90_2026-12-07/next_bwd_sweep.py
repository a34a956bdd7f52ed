"""Prepared in session 8 without a GPU; run on an H100 in session 9 (2026-12-07), results in
../gpu_h100_2026-12-07_session9/next_bwd_sweep.json.

Two questions about the chunked backward that the static analysis (aot_chunked.py) leaves open:
1. How much of it is the dB / dC atomics?  Variant "no-atomics" replaces each `tl.atomic_add` with a
   plain `tl.store` (racy, wrong dB / dC: a timing diagnostic only, never shipped).
2. Does more occupancy pay?  At N = 16 the backward holds 128 registers (16 warps / SM); `maxnreg=96`
   gives 21 warps / SM with 8 bytes of stack (aot_chunked.py).  Session 6 measured BLOCK_L = 64 (72
   registers, 28 warps / SM): no faster (vim_s_layer 2.54 vs 2.60 ms, vim_s_1024 5.66 vs 4.75).

The variants are built from kernels/selective/triton_fused.py's source by text substitution, so the
shipped code stays as it is.  On the device:  python docs/results/static_sm90_2026-12-07/next_bwd_sweep.py
(writes $OUT/next_bwd_sweep.json).  --smoke: tiny shapes under TRITON_INTERPRET=1 on the CPU, to check
the script itself."""
import argparse, importlib.util, json, os, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true")
args = ap.parse_args()
if args.smoke:
    os.environ["TRITON_INTERPRET"] = "1"
import torch  # noqa: E402
import triton  # noqa: E402
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs, rel_err  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SRC = open(f"{ROOT}/kernels/selective/triton_fused.py").read()
for rel, absolute in (("from . import triton_blocked", "from vision_mamba.kernels.selective import triton_blocked"),
                      ("from ._common", "from vision_mamba.kernels.selective._common"),
                      ("from ._triton_common", "from vision_mamba.kernels.selective._triton_common")):
    SRC = SRC.replace(rel, absolute)
LAUNCH = "SOFTPLUS=bool(delta_softplus), REVERSE=bool(reverse), num_warps=num_warps)\n    return (du,"


def variant(name: str, no_atomics: bool, maxnreg):
    src = SRC
    # both substitutions must find their text, also in --smoke, so that a changed kernel source fails here
    # instead of silently timing the shipped kernel under a variant's name
    assert SRC.count('tl.atomic_add(') == 2 and LAUNCH in SRC, "triton_fused.py changed: update the substitutions"
    if no_atomics:
        src = src.replace('tl.atomic_add(', 'tl.store(').replace(', sem="relaxed")', ')')
    if maxnreg and not args.smoke:          # the interpreter takes no compile options
        src = src.replace(LAUNCH, LAUNCH.replace("num_warps=num_warps)", f"num_warps=num_warps, maxnreg={maxnreg})"))
    path = f"/tmp/tf_variant_{name}.py"
    open(path, "w").write(src)
    spec = importlib.util.spec_from_file_location(f"tf_variant_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


VARIANTS = {"shipped": (False, None), "maxnreg96": (False, 96), "maxnreg80": (False, 80),
            "no-atomics": (True, None), "no-atomics+maxnreg96": (True, 96)}
if args.smoke:
    device, dtype = "cpu", torch.float32
    shapes = [ScanShape("smoke_n16", 2, 8, 150, 16, 1, True), ScanShape("smoke_n1", 2, 8, 150, 1, 4, False)]
else:
    device, dtype = "cuda", torch.bfloat16
    shapes = [SHAPES[n] for n in ("vim_s_layer", "vim_s_1024", "vmamba_t_stage1", "long")] + [
        ScanShape("vmamba_t_train_stage1", 128, 768, 3136, 1, 4, False)]


def bench(fn):
    if args.smoke:
        fn()
        return float("nan")
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")


rows = []
mods = {name: variant(name.replace("+", "_").replace("-", "_"), *cfg) for name, cfg in VARIANTS.items()}
for shape in shapes:
    ins = make_inputs(shape, dtype, device, seed=2)
    dout = torch.randn_like(ins["u"])
    base = mods["shipped"]
    y, ck = base.forward(**ins, delta_softplus=True)
    ref = base.backward(dout, None, **ins, checkpoints=ck, delta_softplus=True)
    for name, mod in list(mods.items()) + [("shipped-again", base)]:
        if "maxnreg" in name and shape.N == 1:
            continue                          # 64 registers already: maxnreg would only raise it
        got = mod.backward(dout, None, **ins, checkpoints=ck, delta_softplus=True)
        err = max(rel_err(a, b) for a, b in zip(got, ref) if a is not None)
        ms = bench(lambda: mod.backward(dout, None, **ins, checkpoints=ck, delta_softplus=True))
        rows.append(dict(shape=shape.name, variant=name, bwd_ms=ms, max_rel_err_vs_shipped=err))
        print(f"{shape.name:24s} {name:22s} bwd {ms:8.3f} ms   max rel err vs shipped {err:.1e}", flush=True)
out = os.environ.get("OUT", "/tmp")
json.dump(dict(device=torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter)",
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, rows=rows), open(f"{out}/next_bwd_sweep.json", "w"), indent=1)
