"""Prepared for the next session (not run yet): the shipped chunked backward (kernels/selective/triton_fused.py)
against the aligned-row variants beside this script, each through its module's `backward` (copies into aligned
rows included), in one process, bf16, with the max relative error of every gradient against shipped:
- tf_padded2.patch: every time row padded to 16 elements (zeros), loads / stores masked at the padded length;
- tf_padded3.patch: only B / C (and dB / dC) padded, the activations and their gradients read and written in place.
Also each variant's forward is the shipped one.  --smoke: interpreter, tiny shapes."""
import json, os, sys, time
if "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"
import torch, triton
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs, rel_err
from vision_mamba.kernels.selective import triton_fused as shipped

smoke = "--smoke" in sys.argv
here = os.path.dirname(os.path.abspath(__file__))


sys.path.insert(0, here)
from variant_src import load  # noqa: E402

mods = {"shipped": shipped, "padded2": load("tf_padded2.patch"), "padded3": load("tf_padded3.patch")}


def bench(fn):
    if smoke:
        fn(); return float("nan")
    return triton.testing.do_bench(fn, warmup=25, rep=150, return_mode="median")


if smoke:
    dev, dtype = "cpu", torch.float32
    shapes = [ScanShape("s", 2, 4, 150, 16, 1, True)]
else:
    dev, dtype = "cuda", torch.bfloat16
    shapes = [SHAPES["vim_s_layer"], SHAPES["vim_s_1024"], SHAPES["long"], SHAPES["vmamba_t_stage1"],
              ScanShape("vim_s_l192", 64, 768, 192, 16, 1, True)]
rows = []
for shape in shapes:
    for reverse in ((False, True) if shape.name in ("vim_s_layer", "s") else (False,)):
        ins = make_inputs(shape, dtype, dev, seed=6)
        dout = torch.randn_like(ins["u"])
        kw = dict(delta_softplus=True, reverse=reverse, kernel="chunked")
        _, ck = shipped.forward(**ins, **kw)
        ref = shipped.backward(dout, None, **ins, checkpoints=ck, **kw)
        for name, mod in mods.items():
            got = mod.backward(dout, None, **ins, checkpoints=ck, **kw)
            err = max(rel_err(a.float(), b.float()) for a, b in zip(got, ref) if a is not None)
            ms = bench(lambda: mod.backward(dout, None, **ins, checkpoints=ck, **kw))
            rows.append(dict(shape=shape.name, reverse=reverse, variant=name, bwd_ms=ms, max_rel_err_vs_shipped=err))
            print(f"{shape.name:16s} rev={int(reverse)} {name:8s} bwd {ms:8.3f} ms  max rel err vs shipped {err:.1e}",
                  flush=True)
json.dump(dict(device=torch.cuda.get_device_name() if dev == "cuda" else "cpu (interpreter)",
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, rows=rows), open(f"{os.environ.get('OUT', '/tmp')}/bwd_pad13.json", "w"), indent=1)
