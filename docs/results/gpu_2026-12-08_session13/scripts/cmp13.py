"""Session 13: the chunked kernels of HEAD (e60121f, through head_module.py)
against the working tree's (B / C in aligned rows; the reversed scan in memory order), forward and backward
timed separately in one process, bf16, and the max relative error of y and every gradient against HEAD's.
--smoke: interpreter, tiny shapes."""
import json, os, sys, time
if "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"
import torch, triton
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs, rel_err
from vision_mamba.kernels.selective import triton_fused as new

smoke = "--smoke" in sys.argv
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_module import load_head  # noqa: E402

old = load_head()
mods = {"head": old, "new": new}


def bench(fn):
    if smoke:
        fn(); return float("nan")
    return triton.testing.do_bench(fn, warmup=25, rep=150, return_mode="median")


if smoke:
    dev, dtype = "cpu", torch.float32
    for m in mods.values():
        m._launch_config = lambda length, n, forward_only=False: (32, 1)
    cases = [(ScanShape("s", 2, 4, 75, 4, 1, True), r, lay) for r in (False, True)
             for lay in ("channel-major", "token-major")] + [(ScanShape("s1", 2, 4, 64, 1, 2, False), True, "channel-major")]
else:
    dev, dtype = "cuda", torch.bfloat16
    S = SHAPES
    cases = [(S["vim_s_layer"], False, "channel-major"), (S["vim_s_layer"], True, "channel-major"),
             (S["vim_s_layer"], False, "token-major"), (S["vim_s_layer"], True, "token-major"),
             (ScanShape("vim_s_l192", 64, 768, 192, 16, 1, True), False, "channel-major"),
             (S["vim_s_1024"], False, "channel-major"), (S["vim_s_1024"], True, "channel-major"),
             (S["long"], False, "channel-major"), (S["long"], True, "channel-major"),
             (S["vmamba_t_stage1"], False, "channel-major"), (S["vmamba_t_stage1"], True, "channel-major")]
rows = []
for shape, reverse, layout in cases:
    ins = make_inputs(shape, dtype, dev, seed=13, layout=layout)
    dout = torch.randn_like(ins["u"])
    dlast = torch.randn(shape.batch, shape.dim, shape.N, device=dev)
    kw = dict(delta_softplus=True, reverse=reverse, kernel="chunked")
    res = {}
    for name, mod in mods.items():
        y, ck = mod.forward(**ins, **kw)
        grads = mod.backward(dout, dlast, **ins, checkpoints=ck, **kw)
        res[name] = (y, ck[:, :, -1], grads)
        f_ms = bench(lambda: mod.forward(**ins, **kw))
        b_ms = bench(lambda: mod.backward(dout, dlast, **ins, checkpoints=ck, **kw))
        res[name + "_t"] = (f_ms, b_ms)
    (y0, l0, g0), (y1, l1, g1) = res["head"], res["new"]
    err = max([rel_err(y1.float(), y0.float()), rel_err(l1.float(), l0.float())] +
              [rel_err(a.float(), b.float()) for a, b in zip(g1, g0) if b is not None])
    for name in mods:
        f_ms, b_ms = res[name + "_t"]
        rows.append(dict(shape=shape.name, reverse=reverse, layout=layout, kernels=name, fwd_ms=f_ms, bwd_ms=b_ms,
                         max_rel_err_new_vs_head=err))
        print(f"{shape.name:16s} rev={int(reverse)} {layout:13s} {name:4s} fwd {f_ms:7.3f} bwd {b_ms:7.3f} ms"
              f"   new vs head max rel err {err:.1e}", flush=True)
json.dump(dict(device=torch.cuda.get_device_name() if dev == "cuda" else "cpu (interpreter)",
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, rows=rows), open(f"{os.environ.get('OUT', '/tmp')}/cmp13.json", "w"), indent=1)
