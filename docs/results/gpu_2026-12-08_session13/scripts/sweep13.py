"""Session 13: the tile kernels' chunk width (BLOCK_L = 32 x VEC steps a warp) at the benchmark shapes, forward and
backward timed separately, bf16, both scan directions for the Vim shapes.  `_launch_config` is replaced per row;
each row's results are compared with the shipped width's (max relative error)."""
import json, os, time
import torch, triton
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs, rel_err
from vision_mamba.kernels.selective import triton_fused as tf

shipped_config = tf._launch_config
rows = []
cases = [(SHAPES["vim_s_layer"], False), (SHAPES["vim_s_layer"], True), (SHAPES["vim_s_1024"], False),
         (SHAPES["long"], False), (SHAPES["vmamba_t_stage1"], False), (ScanShape("vmamba_t_stage3", 64, 1536, 196, 1, 4, False), False)]
for shape, reverse in cases:
    ins = make_inputs(shape, torch.bfloat16, "cuda", seed=13)
    dout = torch.randn_like(ins["u"])
    kw = dict(delta_softplus=True, reverse=reverse, kernel="chunked")
    tf._launch_config = shipped_config
    y0, ck0 = tf.forward(**ins, **kw)
    g0 = tf.backward(dout, None, **ins, checkpoints=ck0, **kw)
    for block_l in (64, 128, 256):
        if block_l > max(32, triton.next_power_of_2(shape.L)):
            continue
        tf._launch_config = lambda length, n, _b=block_l: (_b, 1)
        y, ck = tf.forward(**ins, **kw)
        g = tf.backward(dout, None, **ins, checkpoints=ck, **kw)
        err = max([rel_err(y.float(), y0.float())] + [rel_err(a.float(), b.float()) for a, b in zip(g, g0) if b is not None])
        f_ms = triton.testing.do_bench(lambda: tf.forward(**ins, **kw), warmup=25, rep=150, return_mode="median")
        b_ms = triton.testing.do_bench(lambda: tf.backward(dout, None, **ins, checkpoints=ck, **kw), warmup=25, rep=150,
                                       return_mode="median")
        rows.append(dict(shape=shape.name, reverse=reverse, block_l=block_l, shipped=block_l == shipped_config(shape.L, shape.N)[0],
                         fwd_ms=f_ms, bwd_ms=b_ms, max_rel_err_vs_shipped=err))
        print(f"{shape.name:16s} rev={int(reverse)} BLOCK_L {block_l:3d}{' *' if rows[-1]['shipped'] else '  '} fwd {f_ms:7.3f} "
              f"bwd {b_ms:7.3f} ms  err vs shipped {err:.1e}", flush=True)
tf._launch_config = shipped_config
json.dump(dict(device=torch.cuda.get_device_name(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               torch=torch.__version__, triton=triton.__version__, rows=rows), open(f"{os.environ.get('OUT', '/tmp')}/sweep13.json", "w"), indent=1)
