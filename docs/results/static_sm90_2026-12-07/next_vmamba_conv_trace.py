"""Prepared in session 8 without a GPU; run on an H100 in session 9 (2026-12-07), results in
../gpu_h100_2026-12-07_session9/vmamba_conv_trace_matmul_proj.json (with the x_proj / dt_proj matmul patch applied).

Which aten ops launch the cuDNN NCHW<->NHWC conversion kernels in VMamba-T's training step (session 7's
compiled-step profile: 707 launches, 11.0 ms of 74.2)?  Profiles one bf16 training step (eager and compiled)
with record_shapes and charges every CUDA kernel to the innermost CPU op that launched it, then prints the ops
(with their input shapes) behind the conversions, and the GPU time per op name.

On the device:  python docs/results/static_sm90_2026-12-07/next_vmamba_conv_trace.py   (about 2 min)
--smoke: a tiny model on the CPU, to check the script itself (no CUDA kernels, so the tables are empty)."""
import argparse, collections, json, os, time

import timm
import torch
from torch.profiler import ProfilerActivity, profile

import vision_mamba  # noqa: F401  (registers the models)

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true")
ap.add_argument("--modes", nargs="+", default=["eager", "compile"])
args = ap.parse_args()
cuda = not args.smoke
dev, batch, res = ("cuda", 128, 224) if cuda else ("cpu", 2, 64)
CONVERSION = ("nchwToNhwc", "nhwcToNchw", "tensorTransformGeneric")
report = {}
for mode in args.modes:
    torch.manual_seed(0)
    model = timm.create_model("vmamba_tiny_s1l8").to(dev).train()
    step_model = torch.compile(model) if mode == "compile" else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(batch, 3, res, res, device=dev)

    def step():
        with torch.autocast(dev, torch.bfloat16):
            step_model(x).float().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    if cuda:
        torch.cuda.synchronize()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts, record_shapes=True) as prof:
        step()
        if cuda:
            torch.cuda.synchronize()
    conv_ops = collections.defaultdict(lambda: [0, 0.0])       # (op, shapes) -> [conversion launches, ms]
    by_op = collections.defaultdict(lambda: [0, 0.0])          # op -> [kernel launches, ms]
    for ev in prof.events():
        if ev.device_type != torch.autograd.DeviceType.CPU or not ev.kernels:
            continue
        for k in ev.kernels:
            ms = k.duration / 1e3
            by_op[ev.name][0] += 1
            by_op[ev.name][1] += ms
            if any(c in k.name for c in CONVERSION):
                chain, p = [ev.name], ev.cpu_parent
                while p is not None and len(chain) < 4:
                    chain.append(p.name)
                    p = p.cpu_parent
                key = (" < ".join(chain), str(ev.input_shapes))
                conv_ops[key][0] += 1
                conv_ops[key][1] += ms
    total = sum(ms for _, ms in conv_ops.values())
    print(f"== {mode}: {sum(n for n, _ in conv_ops.values())} conversion launches, {total:.2f} ms")
    for (chain, shapes), (n, ms) in sorted(conv_ops.items(), key=lambda kv: -kv[1][1])[:25]:
        print(f"  {ms:7.2f} ms {n:4d}x  {chain}  {shapes[:160]}")
    print(f"-- {mode}: GPU time by launching op (top 20)")
    for name, (n, ms) in sorted(by_op.items(), key=lambda kv: -kv[1][1])[:20]:
        print(f"  {ms:7.2f} ms {n:5d}x  {name}")
    report[mode] = dict(conversions=[dict(ops=c, shapes=s, launches=n, ms=ms) for (c, s), (n, ms) in conv_ops.items()],
                        by_op={k: dict(launches=n, ms=ms) for k, (n, ms) in by_op.items()})
    del step_model, model, opt
out = os.environ.get("OUT", "/tmp")
json.dump(dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), device=dev, batch=batch, res=res,
               torch=torch.__version__, report=report), open(f"{out}/vmamba_conv_trace.json", "w"), indent=1)
