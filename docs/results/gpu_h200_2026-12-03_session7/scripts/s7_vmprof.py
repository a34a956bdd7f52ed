"""VMamba-T b128 224 bf16: eager / channels_last / compile timing, and kernel-category profiles.
usage: s7_vmprof.py infer|train"""
import collections, json, os, sys, time
import torch, timm
import vision_mamba  # noqa: registers
from torch.profiler import profile, ProfilerActivity
sys.path.insert(0, os.path.dirname(__file__))
mode = sys.argv[1]
variants = sys.argv[2:] or ["eager", "cl", "cl+compile"]
OUT = os.environ.get("OUT", "/tmp")
train = mode == "train"
res = {}

def cat(k):
    k = k.lower()
    if "selective" in k or "_fwd_kernel" in k or "_bwd_kernel" in k or "segment" in k: return "scan"
    if "cross" in k or "_scan_kernel" in k or "_merge_kernel" in k: return "cross"
    if "gemm" in k or "cutlass" in k or "sm90" in k or "nvjet" in k or "gemv" in k or "xmma" in k: return "matmul"
    if "norm" in k: return "norm"
    if "copy" in k or "transpose" in k or "cat" in k: return "copy"
    if "conv" in k or "implicit" in k: return "conv"
    if "triton" in k: return "triton_fused"
    return "elementwise/other"

for v in variants:
    torch.manual_seed(0)
    m = timm.create_model("vmamba_tiny_s1l8").cuda().train(train)
    x = torch.randn(128, 3, 224, 224, device="cuda")
    if "cl" in v.split("+"):
        m = m.to(memory_format=torch.channels_last); x = x.contiguous(memory_format=torch.channels_last)
    f = torch.compile(m) if "compile" in v else m
    opt = torch.optim.SGD(m.parameters(), lr=1e-3) if train else None
    def step():
        with torch.autocast("cuda", torch.bfloat16):
            if train:
                f(x).float().mean().backward(); opt.step(); opt.zero_grad(set_to_none=True)
            else:
                with torch.no_grad():
                    f(x)
    t0 = time.time()
    for _ in range(3): step()
    torch.cuda.synchronize(); warm = time.time() - t0
    ts = []
    for _ in range(10):
        a = torch.cuda.Event(enable_timing=True); b = torch.cuda.Event(enable_timing=True)
        a.record(); step(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
    ts.sort(); ms = ts[len(ts) // 2]
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step(); torch.cuda.synchronize()
    agg = collections.defaultdict(lambda: [0, 0.0]); per = collections.defaultdict(lambda: [0, 0.0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            t = e.device_time / 1e3
            agg[cat(e.name)][0] += 1; agg[cat(e.name)][1] += t
            per[e.name[:100]][0] += 1; per[e.name[:100]][1] += t
    tot = sum(t for _, t in agg.values())
    print(f"== {v} {mode}: median {ms:.2f} ms = {128 / ms * 1e3:.0f} img/s (warmup {warm:.0f} s); GPU {tot:.2f} ms, "
          f"{sum(n for n, _ in agg.values())} launches", flush=True)
    for c, (n, t) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        print(f"  {c:18s} {n:5d} {t:8.2f} ms")
    for k, (n, t) in sorted(per.items(), key=lambda kv: -kv[1][1])[:10]:
        print(f"    {t:7.2f} ms {n:4d}x {k}")
    res[v] = {"median_ms": ms, "img_per_s": 128 / ms * 1e3, "gpu_ms": tot,
              "categories": {c: {"launches": n, "ms": t} for c, (n, t) in agg.items()},
              "top": {k: {"launches": n, "ms": t} for k, (n, t) in sorted(per.items(), key=lambda kv: -kv[1][1])[:25]}}
    del f, m, opt; torch.cuda.empty_cache()
json.dump(res, open(f"{OUT}/vmamba_t_{mode}_variants.json", "w"), indent=1)
