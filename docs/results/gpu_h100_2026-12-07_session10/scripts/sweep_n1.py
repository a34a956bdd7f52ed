"""Session 10: chunk length / warps of the chunked scan per shape (fwd and bwd timed apart, bf16), with the
error of every output and gradient against the shipped config.  --smoke: interpreter, tiny shapes.  Run as scratch/sweep_n1.py (call B), with the forward's 2x unroll
(commit 00cf5aa) in place."""
import json, os, sys, time
if "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"
import torch, triton
from vision_mamba.kernels.selective import triton_fused as tf
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs, rel_err

smoke = "--smoke" in sys.argv
shipped_cfg = tf._launch_config
if smoke:
    dev, dtype = "cpu", torch.float32
    shapes = [ScanShape("s_n1", 1, 8, 300, 1, 4, False), ScanShape("s_n16", 1, 2, 300, 16, 1, True)]
    cfgs = {"s_n1": [None, (256, 1), (256, 2)], "s_n16": [None, (256, 2)]}
else:
    dev, dtype = "cuda", torch.bfloat16
    shapes = [ScanShape("vmamba_train_s1", 128, 768, 3136, 1, 4, False),
              ScanShape("vmamba_train_s2", 128, 1536, 784, 1, 4, False),
              ScanShape("vmamba_train_s3", 128, 3072, 196, 1, 4, False),
              SHAPES["vim_s_layer"], SHAPES["vim_s_1024"], SHAPES["long"]]
    n1 = [None, (64, 1), (256, 1), (512, 1), (256, 2), (512, 2), (1024, 4)]
    n16 = [None, (256, 2), (512, 4)]
    cfgs = {s.name: (n1 if s.N == 1 else n16) for s in shapes}


def bench(fn):
    if smoke:
        fn(); return float("nan")
    return triton.testing.do_bench(fn, warmup=25, rep=150, return_mode="median")


rows = []
for shape in shapes:
    ins = make_inputs(shape, dtype, dev, seed=7)
    dout = torch.randn_like(ins["u"])
    ref = None
    for cfg in cfgs[shape.name]:
        tf._launch_config = shipped_cfg if cfg is None else (
            lambda length, c=cfg: (min(c[0], max(32, triton.next_power_of_2(length))), c[1]))
        name = "shipped" if cfg is None else f"L{cfg[0]}w{cfg[1]}"
        y, ck = tf.forward(**ins, delta_softplus=True, kernel="chunked")
        grads = tf.backward(dout, None, **ins, checkpoints=ck, delta_softplus=True, kernel="chunked")
        outs = [y, *[g for g in grads if g is not None]]
        if ref is None:
            ref = outs
        err = max(rel_err(a.float(), b.float()) for a, b in zip(outs, ref))
        f_ms = bench(lambda: tf.forward(**ins, delta_softplus=True, kernel="chunked"))
        b_ms = bench(lambda: tf.backward(dout, None, **ins, checkpoints=ck, delta_softplus=True, kernel="chunked"))
        rows.append(dict(shape=shape.name, config=name, fwd_ms=f_ms, bwd_ms=b_ms, max_rel_err_vs_shipped=err))
        print(f"{shape.name:18s} {name:8s} fwd {f_ms:7.3f} ms  bwd {b_ms:7.3f} ms  err vs shipped {err:.1e}", flush=True)
    tf._launch_config = shipped_cfg
json.dump(dict(device=torch.cuda.get_device_name() if dev == "cuda" else "cpu (interpreter)",
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, rows=rows), open(f"{os.environ.get('OUT', '/tmp')}/sweep_n1.json", "w"), indent=1)
