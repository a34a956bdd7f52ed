import os, sys, re, subprocess, tempfile, importlib.util
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
SRC = '''
import triton
import triton.language as tl

@triton.jit
def _first_order(a1, x1, a2, x2):
    return a1 * a2, a2 * x1 + x2

@triton.jit
def _tile():
    return tl.arange(0, 32)[:, None] * 4 + tl.arange(0, 4)[None, :]

@triton.jit
def p_flip(a_ptr, x_ptr, o_ptr):
    offs = _tile()
    a = tl.load(a_ptr + offs)
    tl.store(o_ptr + offs, tl.flip(a, 1))

@triton.jit
def p_gather1(a_ptr, x_ptr, o_ptr):
    offs = _tile()
    a = tl.load(a_ptr + offs)
    j = tl.arange(0, 4)[None, :] + tl.zeros([32, 4], tl.int32)
    tl.store(o_ptr + offs, tl.gather(a, tl.maximum(j - 1, 0), 1))

@triton.jit
def p_revscan_flip(a_ptr, x_ptr, o_ptr):
    offs = _tile()
    a = tl.flip(tl.load(a_ptr + offs), 1)
    x = tl.flip(tl.load(x_ptr + offs), 1)
    c, h = tl.associative_scan((a, x), 1, _first_order)
    tl.store(o_ptr + offs, tl.flip(h + c, 1))

@triton.jit
def p_split(a_ptr, x_ptr, o_ptr):
    offs = _tile()
    a = tl.load(a_ptr + offs)
    a01, a23 = tl.split(tl.reshape(a, [32, 2, 2]))   # q = 0 / 1: columns (0, 2), (1, 3)
    c0, c2 = tl.split(a01)
    c1, c3 = tl.split(a23)
    # suffix sums in-thread by hand, then back
    s3 = c3
    s2 = c2 * s3 + 1.0
    s1 = c1 * s2 + 1.0
    s0 = c0 * s1 + 1.0
    out = tl.reshape(tl.join(tl.join(s0, s2), tl.join(s1, s3)), [32, 4])
    tl.store(o_ptr + offs, out)
'''
path = os.path.join(tempfile.mkdtemp(), "pk2.py"); open(path, "w").write(SRC)
spec = importlib.util.spec_from_file_location("pk2", path); mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
target = GPUTarget("cuda", 90, 32)
opts = triton.compiler.make_backend(target).parse_options(dict(num_warps=1, num_stages=1)).__dict__
tools = os.path.dirname(triton.__file__) + "/backends/nvidia/bin/"
for name in ("p_flip", "p_gather1", "p_revscan_flip", "p_split"):
    fn = getattr(mod, name)
    sig = {"a_ptr": "*fp32", "x_ptr": "*fp32", "o_ptr": "*fp32"}
    attrs = {(i,): [["tt.divisibility", 16]] for i in range(3)}
    try:
        cc = triton.compile(triton.compiler.ASTSource(fn=fn, signature=sig, constexprs={}, attrs=attrs), target=target, options=opts)
    except Exception as e:
        print(name, "FAILED", str(e)[:300]); continue
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cc.asm["cubin"]); f.flush()
        sass = subprocess.run([tools + "nvdisasm", "-c", f.name], capture_output=True, text=True).stdout
    ins = [l for l in sass.splitlines() if re.search(r"/\*[0-9a-f]{4}\*/", l)]
    cnt = lambda k: sum(k in l for l in ins)
    print(f"{name}: {len(ins)} instr, SHFL {cnt('SHFL')}, LDS {cnt('LDS')} STS {cnt('STS')}, BAR {cnt('BAR')}, LDG {cnt('LDG')}, STG {cnt('STG')}")
    
