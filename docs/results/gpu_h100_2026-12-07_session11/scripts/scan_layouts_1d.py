import re, sys, os, tempfile, importlib.util, subprocess
import triton
from triton.backends.compiler import GPUTarget
SRC = r'''
import triton
import triton.language as tl

@triton.jit
def _first_order(a1, x1, a2, x2):
    return a1 * a2, a2 * x1 + x2

@triton.jit
def k(a_ptr, x_ptr, o_ptr, L, base, V: tl.constexpr, BL: tl.constexpr):
    offs = tl.arange(0, BL)
    m = offs < L
    if V == 0:  # reverse=True
        a = tl.load(a_ptr + base + offs, mask=m, other=1.0).to(tl.float32)
        x = tl.load(x_ptr + base + offs, mask=m, other=0.0).to(tl.float32)
        c, h = tl.associative_scan((a, x), 0, _first_order, reverse=True)
    elif V == 1:  # reversed loads, forward scan, gather back h only
        ro = BL - 1 - offs
        a = tl.load(a_ptr + base + ro, mask=m, other=1.0).to(tl.float32)
        x = tl.load(x_ptr + base + ro, mask=m, other=0.0).to(tl.float32)
        c, h = tl.associative_scan((a, x), 0, _first_order)
        h = tl.gather(h, ro, 0)
        c = 0.0
    elif V == 2:  # forward scan only
        a = tl.load(a_ptr + base + offs, mask=m, other=1.0).to(tl.float32)
        x = tl.load(x_ptr + base + offs, mask=m, other=0.0).to(tl.float32)
        c, h = tl.associative_scan((a, x), 0, _first_order)
    elif V == 3:  # gather only
        x = tl.load(x_ptr + base + offs, mask=m, other=0.0).to(tl.float32)
        h = tl.gather(x, BL - 1 - offs, 0)
        c = 0.0
    elif V == 4:  # flip only
        x = tl.load(x_ptr + base + offs, mask=m, other=0.0).to(tl.float32)
        h = tl.flip(x, 0)
        c = 0.0
    tl.store(o_ptr + base + offs, h + c, mask=m)
'''
path = os.path.join(tempfile.mkdtemp(), "mk.py"); open(path, "w").write(SRC)
spec = importlib.util.spec_from_file_location("mk", path); mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
target = GPUTarget("cuda", 90, 32)
tools = os.path.dirname(triton.__file__) + "/backends/nvidia/bin/"
for BL in (128, 256):
  for V in range(5):
    consts = dict(V=V, BL=BL)
    sig = {"a_ptr": "*bf16", "x_ptr": "*bf16", "o_ptr": "*fp32", "L": "i32", "base": "i32"}
    for kk in consts: sig[kk] = "constexpr"
    attrs = {(0,): [["tt.divisibility", 16]], (1,): [["tt.divisibility", 16]], (2,): [["tt.divisibility", 16]]}
    cc = triton.compile(triton.compiler.ASTSource(fn=mod.k, signature=sig, constexprs=consts, attrs=attrs), target=target,
                        options=triton.compiler.make_backend(target).parse_options(dict(num_warps=1)).__dict__)
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cc.asm["cubin"]); f.flush()
        sass = subprocess.run([tools + "nvdisasm", "-c", f.name], capture_output=True, text=True).stdout
    lay = sorted(set(re.findall(r"#(?:blocked|linear)\d* = .*", cc.asm["ttgir"])))
    print(BL, V, "SHFL", len(re.findall(r"SHFL", sass)), "instr", len(re.findall(r"/\*[0-9a-f]{4}\*/", sass)), "BAR", len(re.findall(r"BAR", sass)), "STS", len(re.findall(r"STS", sass)), [l[:90] for l in lay])
