"""Cross-scan kernel before/after (mirror loads instead of reversed stores) at VMamba-T b128 stage shapes."""
import importlib.util, json, os, sys, types
import torch, triton
import vision_mamba  # noqa
from vision_mamba.kernels.orderings import triton_fused as new
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import old_cross_mod as old   # the kernel before this session's change (triton.jit needs a real file)
from triton.testing import do_bench
rows = []
for shape in [(128, 192, 56, 56), (128, 384, 28, 28), (128, 768, 14, 14), (128, 1536, 7, 7), (8, 384, 78, 78)]:
    b, c, h, w = shape
    x = torch.randn(b, c, h, w, device="cuda", dtype=torch.bfloat16)
    a = old.scan_launch(x, 4, h, w); n = new.scan_launch(x, 4, h, w)
    same = torch.equal(a, n)
    t_old = do_bench(lambda: old.scan_launch(x, 4, h, w), warmup=25, rep=200)
    t_new = do_bench(lambda: new.scan_launch(x, 4, h, w), warmup=25, rep=200)
    t_merge = do_bench(lambda: new.merge_launch(n, 4, h, w), warmup=25, rep=200)
    gb = x.numel() * 2 * 5 / 1e9
    r = dict(shape=shape, equal=same, old_ms=t_old, new_ms=t_new, merge_ms=t_merge, bytes_GB=gb,
             new_TBps=gb / t_new, merge_TBps=gb / t_merge)
    rows.append(r)
    print(f"{str(shape):22s} equal={same} scan old {t_old:.3f} ms  new {t_new:.3f} ms ({gb / t_new:.2f} TB/s)  "
          f"merge {t_merge:.3f} ms ({gb / t_merge:.2f} TB/s)", flush=True)
json.dump(rows, open(os.path.join(os.environ.get("OUT", "/tmp"), "cross_scan_mirror.json"), "w"), indent=1)
