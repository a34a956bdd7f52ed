#!/usr/bin/env python3
"""Issue 5 GPU check: Mask R-CNN + VMamba-T at 800x1333, bf16 autocast, 20 AdamW steps on random images
with random boxes/masks (80 classes): step time, peak memory, non-finite losses."""
import json, os, time
import torch
from vision_mamba.tasks.detection import build_detector

torch.manual_seed(0)
dev = "cuda"
model = build_detector("vmamba_tiny_s1l8", "mask_rcnn", 80, min_size=800, max_size=1333).to(dev).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
def sample():
    img = torch.rand(3, 800, 1333, device=dev)
    n = 12
    xy = torch.rand(n, 2, device=dev) * torch.tensor([1100., 600.], device=dev)
    wh = 40 + torch.rand(n, 2, device=dev) * 150
    boxes = torch.cat([xy, xy + wh], 1)
    masks = torch.zeros(n, 800, 1333, dtype=torch.uint8, device=dev)
    for i, b in enumerate(boxes.long().tolist()):
        masks[i, b[1]:b[3], b[0]:b[2]] = 1
    return img, {"boxes": boxes, "labels": torch.randint(1, 81, (n,), device=dev), "masks": masks}
batch = [sample() for _ in range(2)]
times, losses, nonfinite = [], [], 0
torch.cuda.reset_peak_memory_stats()
for step in range(20):
    torch.cuda.synchronize(); t = time.perf_counter()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss_dict = model([b[0] for b in batch], [b[1] for b in batch])
    loss = sum(loss_dict.values())
    if not torch.isfinite(loss):
        nonfinite += 1
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    torch.cuda.synchronize(); times.append(time.perf_counter() - t); losses.append(loss.item())
res = dict(model="mask_rcnn vmamba_tiny_s1l8", images="2 x 800x1333", steps=20, median_ms=1000 * sorted(times[2:])[len(times[2:]) // 2],
           first_step_s=times[0], peak_gib=torch.cuda.max_memory_allocated() / 2**30, nonfinite=nonfinite,
           loss_first=losses[0], loss_last=losses[-1], device=torch.cuda.get_device_name(), torch=torch.__version__)
print(json.dumps(res, indent=1))
json.dump(res, open(os.path.join(os.environ.get("OUT", "."), "maskrcnn.json"), "w"), indent=1)
