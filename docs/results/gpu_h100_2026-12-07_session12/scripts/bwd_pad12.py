"""Session 12, call B: the chunked backward with aligned time rows (kernels/selective/triton_fused.py now) against
the same file at HEAD before the change (scratch/s12/tf_before.py), through each module's `backward` (the
copies into aligned rows included), in one process; the forward at L = 197 vs 192 (is padding worth it there
too?).  --smoke: interpreter, tiny shapes."""
import importlib.util, json, os, sys, time
if "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"
import torch, triton
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs, rel_err
from vision_mamba.kernels.selective import triton_fused as now

smoke = "--smoke" in sys.argv
here = os.path.dirname(os.path.abspath(__file__))
src = open(f"{here}/tf_before.py").read()
for rel, absolute in (("from . import triton_blocked", "from vision_mamba.kernels.selective import triton_blocked"),
                      ("from ._common", "from vision_mamba.kernels.selective._common"),
                      ("from ._triton_common", "from vision_mamba.kernels.selective._triton_common")):
    src = src.replace(rel, absolute)
path = "/tmp/tf_before_mod.py"
open(path, "w").write(src)
spec = importlib.util.spec_from_file_location("tf_before_mod", path)
before = importlib.util.module_from_spec(spec)
spec.loader.exec_module(before)


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
        ins = make_inputs(shape, dtype, dev, seed=5)
        dout = torch.randn_like(ins["u"])
        kw = dict(delta_softplus=True, reverse=reverse, kernel="chunked")
        _, ck = before.forward(**ins, **kw)
        ref = before.backward(dout, None, **ins, checkpoints=ck, **kw)
        got = now.backward(dout, None, **ins, checkpoints=ck, **kw)
        err = max(rel_err(a.float(), b.float()) for a, b in zip(got, ref) if a is not None)
        t_before = bench(lambda: before.backward(dout, None, **ins, checkpoints=ck, **kw))
        t_now = bench(lambda: now.backward(dout, None, **ins, checkpoints=ck, **kw))
        t_fwd = bench(lambda: now.forward(**ins, **kw))
        rows.append(dict(shape=shape.name, reverse=reverse, bwd_before_ms=t_before, bwd_now_ms=t_now, fwd_ms=t_fwd,
                         row=now.aligned_rows(shape.L, reverse), max_rel_err_now_vs_before=err))
        print(f"{shape.name:16s} rev={int(reverse)} row {now.aligned_rows(shape.L, reverse):5d}  bwd before {t_before:7.3f} "
              f"now {t_now:7.3f} ms  fwd {t_fwd:7.3f} ms  max rel err now vs before {err:.1e}", flush=True)
json.dump(dict(device=torch.cuda.get_device_name() if dev == "cuda" else "cpu (interpreter)",
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, rows=rows), open(f"{os.environ.get('OUT', '/tmp')}/bwd_pad12.json", "w"), indent=1)
