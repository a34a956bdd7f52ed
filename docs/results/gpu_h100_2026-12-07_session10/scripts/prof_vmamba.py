"""Session 10: VMamba-T b128 224 bf16 compiled training step on the device, per SS2D projection variant:
median step time, GPU time by kernel category, and by (innermost op < parents) chain.
usage: prof_vmamba.py VARIANT...   (shipped | bd: x_proj / dt_proj as one block-diagonal matmul each)

Run from the repository root as scratch/prof_vmamba.py: call A (`shipped bd`; this version without the
dynamo reset, so "bd" reused the first variant's compiled graph and its row is void) and call B (`shipped bd
shipped_nlo bd_nlo`, with the reset).  In one process the later variants' medians sat 15-26 ms above their
GPU time (shipped_nlo: 95.2 ms wall, 78.4 ms GPU, the same kernels as shipped), so compare the GPU times
here; the wall-clock comparison is tools/benchmark.py, one process per variant (callC.log).  "kbmm" (per-route
batched matmuls without the block-diagonal zeros) was added after the device time was spent: never run on
a GPU."""
import collections, json, os, sys, time
import torch, timm
import torch.nn.functional as F
from torch.profiler import profile, ProfilerActivity
import vision_mamba  # noqa
from vision_mamba.layers import ss2d as S

OUT = os.environ.get("OUT", "/tmp")
shipped_scan = S.SS2D.scan


def scan_bd(self, x):
    b, e, h, w = x.shape
    k, r, n, L = self.k_group, self.dt_rank, self.d_state, h * w
    xs = S.cross_scan(x, self.ordering, backend=self.cross_scan_backend).reshape(b, k * e, L)
    x_dbl = torch.matmul(torch.block_diag(*self.x_proj_weight.unbind(0)), xs)
    dts, Bs, Cs = torch.split(x_dbl.view(b, k, r + 2 * n, L), [r, n, n], dim=2)
    dts = torch.matmul(torch.block_diag(*self.dt_projs_weight.unbind(0)), dts.reshape(b, k * r, L))
    ys = S.selective_scan(xs, dts, -torch.exp(self.A_logs.float()), Bs.contiguous(), Cs.contiguous(),
                          self.Ds.float(), delta_bias=self.dt_projs_bias.reshape(-1).float(), delta_softplus=True,
                          backend=self.scan_backend)
    y = S.cross_merge(ys.view(b, k, e, L), self.ordering, h, w, backend=self.cross_scan_backend)
    return y.view(b, e, h, w)


def scan_kbmm(self, x):
    b, e, h, w = x.shape
    k, r, n, L = self.k_group, self.dt_rank, self.d_state, h * w
    xs = S.cross_scan(x, self.ordering, backend=self.cross_scan_backend).reshape(b, k, e, L)
    x_dbl = torch.matmul(self.x_proj_weight, xs)                    # (b, k, r + 2n, L)
    dts, Bs, Cs = torch.split(x_dbl, [r, n, n], dim=2)
    dts = torch.matmul(self.dt_projs_weight, dts)                   # (b, k, e, L)
    ys = S.selective_scan(xs.view(b, k * e, L), dts.view(b, k * e, L), -torch.exp(self.A_logs.float()),
                          Bs.contiguous(), Cs.contiguous(), self.Ds.float(),
                          delta_bias=self.dt_projs_bias.reshape(-1).float(), delta_softplus=True,
                          backend=self.scan_backend)
    y = S.cross_merge(ys.view(b, k, e, L), self.ordering, h, w, backend=self.cross_scan_backend)
    return y.view(b, e, h, w)


VARIANTS = {"shipped": shipped_scan, "bd": scan_bd, "kbmm": scan_kbmm}
# "<proj>" or "<proj>_nlo": inductor's layout optimisation (convs to channels-last) off


def cat(k):
    k = k.lower()
    if "selective" in k or "_fwd_kernel" in k or "_bwd_kernel" in k or "segment" in k: return "scan"
    if "cross" in k or "_scan_kernel" in k or "_merge_kernel" in k: return "cross"
    if "nchwtonhwc" in k or "nhwctonchw" in k or "tensortransform" in k: return "cudnn_conversion"
    if "gemm" in k or "cutlass" in k or "sm90" in k or "nvjet" in k or "gemv" in k or "xmma" in k: return "matmul/conv"
    if "norm" in k: return "norm"
    if "copy" in k or "transpose" in k or "cat" in k: return "copy"
    if "conv" in k or "implicit" in k: return "conv"
    if "triton" in k: return "triton_fused"
    return "elementwise/other"


res = {}
for v in sys.argv[1:] if __name__ == '__main__' else []:
    torch._dynamo.reset()      # else the first variant's compiled graph is reused (its guards miss SS2D.scan)
    S.SS2D.scan = VARIANTS[v.split("_")[0]]
    import torch._inductor.config as icfg
    icfg.layout_optimization = not v.endswith("_nlo")
    torch.manual_seed(0)
    m = timm.create_model("vmamba_tiny_s1l8").cuda().train()
    x = torch.randn(128, 3, 224, 224, device="cuda")
    f = torch.compile(m)
    opt = torch.optim.SGD(m.parameters(), lr=1e-3)

    def step():
        with torch.autocast("cuda", torch.bfloat16):
            f(x).float().mean().backward()
        opt.step(); opt.zero_grad(set_to_none=True)

    t0 = time.time()
    for _ in range(3): step()
    torch.cuda.synchronize(); warm = time.time() - t0
    ts = []
    for _ in range(15):
        a = torch.cuda.Event(enable_timing=True); b = torch.cuda.Event(enable_timing=True)
        a.record(); step(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
    ts.sort(); ms = ts[len(ts) // 2]
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step(); torch.cuda.synchronize()
    cats = collections.defaultdict(lambda: [0, 0.0]); chains = collections.defaultdict(lambda: [0, 0.0])
    kern = collections.defaultdict(lambda: [0, 0.0])
    for ev in prof.events():
        if ev.device_type != torch.autograd.DeviceType.CPU or not ev.kernels:
            continue
        chain, p = [ev.name[:60]], ev.cpu_parent
        while p is not None and len(chain) < 4:
            chain.append(p.name[:60]); p = p.cpu_parent
        for kk in ev.kernels:
            t = kk.duration / 1e3
            c = cats[cat(kk.name)]; c[0] += 1; c[1] += t
            c = chains[" < ".join(chain)]; c[0] += 1; c[1] += t
            c = kern[kk.name[:90]]; c[0] += 1; c[1] += t
    tot = sum(t for _, t in cats.values())
    print(f"== {v}: median {ms:.2f} ms = {128 / ms * 1e3:.0f} img/s (warmup {warm:.0f} s); GPU {tot:.2f} ms, "
          f"{sum(n for n, _ in cats.values())} launches", flush=True)
    for c, (n, t) in sorted(cats.items(), key=lambda kv: -kv[1][1]):
        print(f"  {c:18s} {n:5d} {t:8.2f} ms")
    print("  -- by op chain")
    for c, (n, t) in sorted(chains.items(), key=lambda kv: -kv[1][1])[:22]:
        print(f"  {t:7.2f} ms {n:4d}x {c}")
    print("  -- by kernel")
    for c, (n, t) in sorted(kern.items(), key=lambda kv: -kv[1][1])[:16]:
        print(f"  {t:7.2f} ms {n:4d}x {c}")
    res[v] = dict(median_ms=ms, img_per_s=128 / ms * 1e3, gpu_ms=tot,
                  categories={c: dict(launches=n, ms=t) for c, (n, t) in cats.items()},
                  chains={c: dict(launches=n, ms=t) for c, (n, t) in sorted(chains.items(), key=lambda kv: -kv[1][1])[:40]},
                  kernels={c: dict(launches=n, ms=t) for c, (n, t) in sorted(kern.items(), key=lambda kv: -kv[1][1])[:40]})
    del f, m, opt; torch.cuda.empty_cache()
if __name__ == '__main__':
  json.dump(dict(device=torch.cuda.get_device_name(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               torch=torch.__version__, res=res), open(f"{OUT}/prof_vmamba.json", "w"), indent=1)
