"""Session 11: where a bench_kernels fwd+bwd goes beyond the two kernels (bf16).  Per shape:
  ops     : bench_kernels' fwd_bwd with selective_scan forced through the custom ops (the path before
            commit 27fa0de, and what traced calls take), median of CUDA-event times
  eager   : the same as shipped now (eager calls -> triton_fused's autograd.Function)
  graph   : the fwd_bwd captured in a CUDA graph and replayed (no CPU in the timed region)
  kernels : forward + backward kernels called directly (do_bench each)
  cpu_us  : CPU time to issue one fwd_bwd (mean over 200 calls, no sync between them)
and a profiler table of one fwd_bwd.  Then chunk 64 vs 128 at L ~ 196 for N = 16 and N = 1 (same run).
--smoke: interpreter, tiny shapes (checks the script runs)."""
import json, os, statistics, sys, time
smoke = "--smoke" in sys.argv
if smoke:
    os.environ["TRITON_INTERPRET"] = "1"
import torch, triton
from vision_mamba.kernels.selective import triton_fused as tf
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs, backend_fn, time_fn, _grad_leaves, rel_err

OUT = os.environ.get("OUT", "/tmp")
dev, dtype = ("cpu", torch.float32) if smoke else ("cuda", torch.bfloat16)
shapes = ([ScanShape("s16", 1, 4, 70, 16, 1, True)] if smoke else
          [SHAPES[s] for s in ("vim_s_layer", "vim_s_1024", "long", "vmamba_t_stage1")])
rows = []


def bench(fn):
    if smoke:
        fn(); return float("nan")
    return triton.testing.do_bench(fn, warmup=25, rep=200, return_mode="median")


for shape in shapes:
    ins = make_inputs(shape, dtype, dev, seed=3)
    g = torch.randn_like(ins["u"])
    row = dict(shape=shape.name)
    from vision_mamba.kernels.selective import triton_op
    shipped_traced = triton_op.traced
    for name in ("ops", "eager"):
        triton_op.traced = (lambda *t: True) if name == "ops" else shipped_traced
        fn = backend_fn("triton")
        leaves = _grad_leaves(ins)
        targets = list(leaves.values())

        def fwd_bwd(fn=fn, leaves=leaves, targets=targets):
            y = fn(**leaves, delta_softplus=True)
            return torch.autograd.grad(y, targets, g)
        if smoke:
            fwd_bwd(); row[name] = float("nan"); continue
        row[name] = statistics.median(time_fn(fwd_bwd, 100, 20, dev))
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(200):
            fwd_bwd()
        t1 = time.perf_counter()
        torch.cuda.synchronize()
        row[name + "_cpu_us"] = (t1 - t0) / 200 * 1e6
        if name == "eager":
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    fwd_bwd()
            torch.cuda.current_stream().wait_stream(s)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fwd_bwd()
            row["graph"] = bench(graph.replay)
            from torch.profiler import profile, ProfilerActivity
            with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
                for _ in range(5):
                    fwd_bwd()
                torch.cuda.synchronize()
            table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=14)
            open(f"{OUT}/prof_{shape.name}.txt", "w").write(table)
            print(table[:3000])
    triton_op.traced = shipped_traced
    y, ck = tf.forward(**ins, delta_softplus=True, kernel="chunked")
    row["fwd_kernel"] = bench(lambda: tf.forward(**ins, delta_softplus=True, kernel="chunked"))
    row["bwd_kernel"] = bench(lambda: tf.backward(g, None, **ins, checkpoints=ck, delta_softplus=True, kernel="chunked"))
    rows.append(row)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

# chunk 64 vs 128 at L ~ 196 (same run)
chunk_rows = []
shipped = tf._launch_config
cshapes = ([ScanShape("s1", 2, 8, 70, 1, 4, False)] if smoke else
           [SHAPES["vim_s_layer"], ScanShape("vmamba_train_s3", 128, 3072, 196, 1, 4, False),
            ScanShape("vmamba_train_s3_N16", 128, 3072, 196, 16, 4, False)])
for shape in cshapes:
    ins = make_inputs(shape, dtype, dev, seed=5)
    g = torch.randn_like(ins["u"])
    ref = None
    for bl in (128, 64):
        tf._launch_config = lambda length, bl=bl: (min(bl, max(32, triton.next_power_of_2(length))), 1)
        y, ck = tf.forward(**ins, delta_softplus=True, kernel="chunked")
        grads = tf.backward(g, None, **ins, checkpoints=ck, delta_softplus=True, kernel="chunked")
        outs = [y, *[t for t in grads if t is not None]]
        ref = ref or outs
        err = max(rel_err(a.float(), b.float()) for a, b in zip(outs, ref))
        f = bench(lambda: tf.forward(**ins, delta_softplus=True, kernel="chunked"))
        b = bench(lambda: tf.backward(g, None, **ins, checkpoints=ck, delta_softplus=True, kernel="chunked"))
        chunk_rows.append(dict(shape=shape.name, block_l=bl, fwd_ms=f, bwd_ms=b, err_vs_128=err))
        print(chunk_rows[-1], flush=True)
    tf._launch_config = shipped
json.dump(dict(device="cpu (interpreter)" if smoke else torch.cuda.get_device_name(),
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, rows=rows, chunk_rows=chunk_rows), open(f"{OUT}/overhead.json", "w"), indent=1)
