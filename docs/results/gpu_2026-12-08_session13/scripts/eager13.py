"""Session 13, call D: (1) Vim-S @224 batch 8 eager inference (bf16 autocast, no_grad) with HEAD's kernels
(tf_shipped.py beside this script) against the tile kernels, with and without the 256-step inference chunks, and a
CPU profile of the tile kernels' run; (2) fp32 `long` with the tile kernels at 128- vs 256-step chunks;
(3) the inference forward at Vim-S @224 batch 8 token-major, 128 vs 256."""
import json, os, sys, time
import timm, torch, triton
import vision_mamba  # noqa: F401  (registers the models)
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs
from vision_mamba.kernels.selective import triton_fused as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from head_module import load_head  # noqa: E402

old = load_head()
new_fwd, new_bwd, new_fo, new_cfg = tf.forward, tf.backward, tf._forward_only, tf._launch_config
out = {}


def use(variant):
    tf.forward, tf.backward = (old.forward, old.backward) if variant == "head" else (new_fwd, new_bwd)
    tf._forward_only = (lambda u, s: False) if variant == "tiles, training widths" else new_fo


model = timm.create_model("vim_small_patch16_224").cuda().eval()
x = torch.randn(8, 3, 224, 224, device="cuda")


def run_model(n):
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(n):
            model(x)


print("== 1. Vim-S @224 b8 eager inference (bf16 autocast)")
for variant in ("head", "tiles, training widths", "tiles", "head", "tiles"):
    use(variant)
    run_model(5)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    run_model(20)
    torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) / 20 * 1e3
    out.setdefault("vim_eager_ms", []).append(dict(variant=variant, ms=ms))
    print(f"{variant:24s} {ms:7.2f} ms per forward", flush=True)
use("tiles")
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    run_model(3)
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
use("tiles")

print("== 2. fp32 long, tile kernels, chunk width")
shape = SHAPES["long"]
ins = make_inputs(shape, torch.float32, "cuda", seed=13)
dout = torch.randn_like(ins["u"])
kw = dict(delta_softplus=True, reverse=False, kernel="chunked")
for block_l in (128, 256):
    tf._launch_config = lambda length, n, forward_only=False, _b=block_l: (_b, 1)
    y, ck = tf.forward(**ins, **kw)
    f_ms = triton.testing.do_bench(lambda: tf.forward(**ins, **kw), warmup=10, rep=100, return_mode="median")
    b_ms = triton.testing.do_bench(lambda: tf.backward(dout, None, **ins, checkpoints=ck, **kw), warmup=10, rep=100,
                                   return_mode="median")
    out.setdefault("long_fp32", []).append(dict(block_l=block_l, fwd_ms=f_ms, bwd_ms=b_ms))
    print(f"long fp32 BLOCK_L {block_l}: fwd {f_ms:.3f} bwd {b_ms:.3f} ms", flush=True)
tf._launch_config = new_cfg

print("== 3. inference forward, Vim-S @224 b8 token-major, bf16")
shape = ScanShape("vim_s_224_b8", 8, 768, 197, 16, 1, True)
ins = make_inputs(shape, torch.bfloat16, "cuda", seed=13, layout="token-major")
for name, mod, fo in (("head", old, None), ("tiles 128", tf, False), ("tiles 256", tf, True)):
    if fo is not None:
        tf._forward_only = lambda u, s, _fo=fo: _fo
    for reverse in (False, True):
        kw = dict(delta_softplus=True, reverse=reverse, kernel="chunked", store_checkpoints=False)
        ms = triton.testing.do_bench(lambda: mod.forward(**ins, **kw), warmup=10, rep=100, return_mode="median")
        out.setdefault("vim_b8_fwd", []).append(dict(variant=name, reverse=reverse, ms=ms))
        print(f"{name:10s} rev={int(reverse)} forward {ms:.3f} ms", flush=True)
tf._forward_only = new_fo
json.dump(dict(device=torch.cuda.get_device_name(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), **out),
          open(f"{os.environ.get('OUT', '/tmp')}/eager13.json", "w"), indent=1)
