"""Session 12: what the N=16 chunked backward's time is made of (timing-only variants, text substitutions of
kernels/selective/triton_fused.py; results wrong where noted), in one process against the shipped kernel:
- noatomic: the dB and dC atomics become plain stores (wrong dB / dC; the atomics' cost);
- noatomic_dC: only dC's atomic becomes a store;
- K2_BL64 / K4_BL32 / K2_BL128: tf_pair.py (beside this script), K channels per one-warp program (right results);
- bfast: programs in batch-fastest order (right results; fewer programs in flight adding into one address);
- shapes vim_s_layer (L = 197, rows not 16-byte aligned) and vim_s_l192 (L = 192, aligned, the same two
  128-step chunks): what the one-element-per-register layout of unaligned rows costs.
--smoke: interpreter, tiny shapes."""
import importlib.util, json, os, sys, time
if "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"
import torch, triton
from vision_mamba.bench.kernels import SHAPES, ScanShape, make_inputs, rel_err

smoke = "--smoke" in sys.argv
# run as scratch/bwd_variants.py (call C); the repository root is the first parent holding kernels/
ROOT = next(p for p in (os.path.dirname(os.path.abspath(__file__)).rsplit("/", k)[0] for k in range(1, 6))
            if os.path.isdir(os.path.join(p, "kernels")))
SRC = open(f"{ROOT}/kernels/selective/triton_fused.py").read()
for rel, absolute in (("from . import triton_blocked", "from vision_mamba.kernels.selective import triton_blocked"),
                      ("from ._common", "from vision_mamba.kernels.selective._common"),
                      ("from ._triton_common", "from vision_mamba.kernels.selective._triton_common")):
    SRC = SRC.replace(rel, absolute)

ATOM_B = ('            tl.atomic_add(dB_ptr + group_B + n * L + tm, g * dtu, mask=mask, sem="relaxed")\n',
          '            tl.store(dB_ptr + group_B + n * L + tm, g * dtu, mask=mask)\n')
ATOM_C = ('            tl.atomic_add(dC_ptr + group_C + n * L + tm, hs * dy, mask=mask, sem="relaxed")\n',
          '            tl.store(dC_ptr + group_C + n * L + tm, hs * dy, mask=mask)\n')
# programs in batch-fastest order: the programs in flight then add into many batches' dB / dC rows instead of
# all adding into one batch's (same-address atomics serialise in L2)
BFAST = ("    pid = tl.program_id(0)\n    b = pid // dim\n    d = pid % dim\n    offs = tl.arange(0, BLOCK_L)\n    row = pid",
         "    nb = tl.num_programs(0) // dim\n    b = tl.program_id(0) % nb\n    d = tl.program_id(0) // nb\n"
         "    pid = b * dim + d\n    offs = tl.arange(0, BLOCK_L)\n    row = pid")
VARIANTS = {"shipped": [], "noatomic": [ATOM_B, ATOM_C], "noatomic_dC": [ATOM_C], "bfast": [BFAST]}


def variant(name, subs):
    src = SRC
    for old, new in subs:
        assert src.count(old) == 1, f"triton_fused.py changed: update {old[:60]!r}"
        src = src.replace(old, new)
    path = f"/tmp/tf_v12_{name}.py"
    open(path, "w").write(src)
    spec = importlib.util.spec_from_file_location(f"tf_var_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench(fn):
    if smoke:
        fn(); return float("nan")
    return triton.testing.do_bench(fn, warmup=25, rep=150, return_mode="median")


if smoke:
    dev, dtype = "cpu", torch.float32
    shapes = [ScanShape("s_n16", 2, 4, 300, 16, 1, True)]
else:
    dev, dtype = "cuda", torch.bfloat16
    shapes = [SHAPES["vim_s_layer"], ScanShape("vim_s_l192", 64, 768, 192, 16, 1, True), SHAPES["vim_s_1024"], SHAPES["long"]]
mods = {k: variant(k, v) for k, v in VARIANTS.items()}
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tf_pair  # noqa: E402  (K channels of a group per program, dB / dC summed before the atomics)
for k, bl in ((2, 64), (4, 32), (2, 128)):
    mods[f"K{k}_BL{bl}"] = tf_pair.Variant(k, bl)
rows = []
for shape in shapes:
    for reverse in ([False, True] if smoke else [False]):
        ins = make_inputs(shape, dtype, dev, seed=4)
        dout = torch.randn_like(ins["u"])
        kw = dict(delta_softplus=True, reverse=reverse, kernel="chunked")
        _, ck = mods["shipped"].forward(**ins, **kw)
        ref = mods["shipped"].backward(dout, None, **ins, checkpoints=ck, **kw)
        for name, mod in mods.items():
            _, ckv = mod.forward(**ins, **kw)
            got = mod.backward(dout, None, **ins, checkpoints=ckv, **kw)
            err = max(rel_err(a.float(), b.float()) for a, b in zip(got, ref) if a is not None)
            ms = bench(lambda: mod.backward(dout, None, **ins, checkpoints=ckv, **kw))
            rows.append(dict(shape=shape.name, reverse=reverse, variant=name, bwd_ms=ms, max_rel_err_vs_shipped=err))
            print(f"{shape.name:16s} rev={int(reverse)} {name:12s} bwd {ms:8.3f} ms  max rel err vs shipped {err:.1e}", flush=True)
json.dump(dict(device=torch.cuda.get_device_name() if dev == "cuda" else "cpu (interpreter)",
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), torch=torch.__version__,
               triton=triton.__version__, rows=rows), open(f"{os.environ.get('OUT', '/tmp')}/bwd_diag12.json", "w"), indent=1)
