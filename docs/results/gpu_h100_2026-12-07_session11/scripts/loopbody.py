"""Static sm_90 SASS of the chunked backward (triton 3.6): instructions in each loop body (backward branches),
with the SHFL / MUFU / atomics among them."""
import sys, os, re, subprocess, tempfile
sys.path.insert(0, "/work/main/docs/results/static_sm90_2026-12-07")
import aot_chunked as A
import triton
A.SHAPES["long"] = (4, 768, 16384, 16, 1, True)
mod = A.load_kernels()
from triton.backends.compiler import GPUTarget
import ttgir  # noqa  (scratch helper: comp())
VAR = os.environ.get("VAR")
if VAR:
    tmp = tempfile.mkdtemp(); os.makedirs(f"{tmp}/kernels/selective")
    open(f"{tmp}/kernels/selective/triton_fused.py", "w").write(open(f"/tmp/tf_var_{VAR}.py").read())
    import shutil; shutil.copy(f"{A.ROOT}/kernels/selective/_triton_common.py", f"{tmp}/kernels/selective/")
    root = A.ROOT; A.ROOT = tmp; ttgir.mod = A.load_kernels(); A.ROOT = root
for kname, shape, bl in (("_bwd_kernel", "vim_s_layer", 128), ("_fwd_kernel", "vim_s_layer", 128), ("_bwd_kernel", "long", 256)):
    cc = ttgir.comp(getattr(ttgir.mod, kname), shape, bl)
    tools = os.path.dirname(triton.__file__) + "/backends/nvidia/bin/"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cc.asm["cubin"]); f.flush()
        sass = subprocess.run([tools + "nvdisasm", "-c", f.name], capture_output=True, text=True).stdout
    lines = [l for l in sass.splitlines() if re.search(r"/\*[0-9a-f]{4}\*/", l)]
    addr = [int(re.search(r"/\*([0-9a-f]{4})\*/", l).group(1), 16) for l in lines]
    print(kname, shape, "total instr", len(lines))
    for i, l in enumerate(lines):
        m = re.search(r"BRA\s+(?:`\(\.L_x_\d+\)|0x([0-9a-f]+))", l)
        if "BRA" in l:
            tgt = re.search(r"\.L_x_(\d+)", l)
            # resolve label address
            if tgt:
                lab = f".L_x_{tgt.group(1)}:"
                idx = sass.find(lab)
                after = sass[idx:].splitlines()[1:3]
                ta = [int(re.search(r"/\*([0-9a-f]{4})\*/", x).group(1), 16) for x in after if re.search(r"/\*([0-9a-f]{4})\*/", x)]
                if ta and ta[0] < addr[i]:
                    body = [x for x, a in zip(lines, addr) if ta[0] <= a <= addr[i]]
                    cnt = lambda p: sum(1 for x in body if re.search(p, x))
                    print(f"  loop {ta[0]:#06x}-{addr[i]:#06x}: {len(body)} instr, SHFL {cnt('SHFL')}, MUFU {cnt('MUFU')}, "
                          f"LDG {cnt('LDG')}, RED/ATOM {cnt('RED|ATOM')}, FFMA/FMUL/FADD {cnt('FFMA|FMUL|FADD')}")
