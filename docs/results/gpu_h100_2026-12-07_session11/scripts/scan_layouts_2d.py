import re, sys, os, tempfile, importlib.util
import triton
from triton.backends.compiler import GPUTarget
SRC = r'''
import triton
import triton.language as tl

@triton.jit
def _first_order(a1, x1, a2, x2):
    return a1 * a2, a2 * x1 + x2

@triton.jit
def _rev_order(a1, x1, a2, x2):
    # composition for a scan run in reversed element order
    return a1 * a2, a1 * x2 + x1

@triton.jit
def k(a_ptr, x_ptr, o_ptr, L, base, V: tl.constexpr, R: tl.constexpr):
    r = tl.arange(0, R)[:, None]
    lane = tl.arange(0, 32)[None, :]
    offs = base + lane * R + r
    m = offs < L
    a = tl.load(a_ptr + offs, mask=m, other=1.0).to(tl.float32)
    x = tl.load(x_ptr + offs, mask=m, other=0.0).to(tl.float32)
    if V == 0:   # local reverse=True, lanes reverse=True
        c, h = tl.associative_scan((a, x), 0, _first_order, reverse=True)
        ta, tx = tl.reduce((a, x), 0, _rev_order)
        ca, cx = tl.associative_scan((ta, tx), 0, _first_order, reverse=True)
    elif V == 1:  # local via flip, lanes reverse=True
        c, h = tl.associative_scan((tl.flip(a, 0), tl.flip(x, 0)), 0, _first_order)
        c = tl.flip(c, 0); h = tl.flip(h, 0)
        ta, tx = tl.reduce((a, x), 0, _rev_order)
        ca, cx = tl.associative_scan((ta, tx), 0, _first_order, reverse=True)
    elif V == 2:  # local reverse=True, lanes via flip
        c, h = tl.associative_scan((a, x), 0, _first_order, reverse=True)
        ta, tx = tl.reduce((a, x), 0, _rev_order)
        ca, cx = tl.associative_scan((tl.flip(ta, 0), tl.flip(tx, 0)), 0, _first_order)
        ca = tl.flip(ca, 0); cx = tl.flip(cx, 0)
    elif V == 3:  # forward everything (baseline)
        c, h = tl.associative_scan((a, x), 0, _first_order)
        ta, tx = tl.reduce((a, x), 0, _first_order)
        ca, cx = tl.associative_scan((ta, tx), 0, _first_order)
    elif V == 4:  # lanes: gather-reversed
        c, h = tl.associative_scan((a, x), 0, _first_order, reverse=True)
        ta, tx = tl.reduce((a, x), 0, _rev_order)
        ridx = 31 - tl.arange(0, 32)
        ca, cx = tl.associative_scan((tl.gather(ta, ridx, 0), tl.gather(tx, ridx, 0)), 0, _first_order)
        ca = tl.gather(ca, ridx, 0); cx = tl.gather(cx, ridx, 0)
    elif V == 5:  # local only reverse
        c, h = tl.associative_scan((a, x), 0, _first_order, reverse=True)
        ca = tl.sum(a, 0); cx = tl.sum(x, 0)
    elif V == 6:  # lanes only reverse=True
        c = a; h = x
        ta, tx = tl.reduce((a, x), 0, _rev_order)
        ca, cx = tl.associative_scan((ta, tx), 0, _first_order, reverse=True)
    tl.store(o_ptr + offs, h + c + cx[None, :] + ca[None, :], mask=m)
'''
path = os.path.join(tempfile.mkdtemp(), "mk.py"); open(path, "w").write(SRC)
spec = importlib.util.spec_from_file_location("mk", path); mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
target = GPUTarget("cuda", 90, 32)
tools = os.path.dirname(triton.__file__) + "/backends/nvidia/bin/"
import subprocess
for V in range(7):
    consts = dict(V=V, R=4)
    sig = {"a_ptr": "*bf16", "x_ptr": "*bf16", "o_ptr": "*fp32", "L": "i32", "base": "i32"}
    for kk in consts: sig[kk] = "constexpr"
    attrs = {(0,): [["tt.divisibility", 16]], (1,): [["tt.divisibility", 16]], (2,): [["tt.divisibility", 16]]}
    try:
        cc = triton.compile(triton.compiler.ASTSource(fn=mod.k, signature=sig, constexprs=consts, attrs=attrs), target=target,
                        options=triton.compiler.make_backend(target).parse_options(dict(num_warps=1)).__dict__)
    except Exception as e:
        print(V, "FAIL", str(e)[:300]); continue
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cc.asm["cubin"]); f.flush()
        sass = subprocess.run([tools + "nvdisasm", "-c", f.name], capture_output=True, text=True).stdout
    lay = sorted(set(re.findall(r"#(?:blocked|linear)\d* = .*", cc.asm["ttgir"])))
    print(V, "SHFL", len(re.findall(r"SHFL", sass)), "instr", len(re.findall(r"/\*[0-9a-f]{4}\*/", sass)), "BAR", len(re.findall(r"BAR", sass)), "STS", len(re.findall(r"STS", sass)))
    for l in lay: print("   ", l[:150])
