import os, sys, re, subprocess, tempfile
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget

SRC = '''
import triton
import triton.language as tl

@triton.jit
def _first_order(a1, x1, a2, x2):
    return a1 * a2, a2 * x1 + x2

@triton.jit
def k1d(a_ptr, x_ptr, o_ptr, REV: tl.constexpr):
    offs = tl.arange(0, 128)
    a = tl.load(a_ptr + offs)
    x = tl.load(x_ptr + offs)
    c, h = tl.associative_scan((a, x), 0, _first_order, reverse=REV)
    tl.store(o_ptr + offs, h + c)

@triton.jit
def k2d(a_ptr, x_ptr, o_ptr, REV: tl.constexpr):
    offs = tl.arange(0, 32)[:, None] * 4 + tl.arange(0, 4)[None, :]
    a = tl.load(a_ptr + offs)
    x = tl.load(x_ptr + offs)
    # in-thread scan along axis 1
    c, h = tl.associative_scan((a, x), 1, _first_order, reverse=REV)
    # per-lane aggregate: the column at the scan's end
    end = 0 if REV else 3
    j = tl.arange(0, 4)[None, :]
    ca = tl.sum(tl.where(j == end, c, 0.0), axis=1)
    ha = tl.sum(tl.where(j == end, h, 0.0), axis=1)
    lane = tl.arange(0, 32)
    # cross-lane inclusive scan of the aggregates by gathers (Hillis-Steele)
    for s in tl.static_range(5):
        k = 1 << s
        if REV:
            src = tl.minimum(lane + k, 31)
            ok = lane + k <= 31
        else:
            src = tl.maximum(lane - k, 0)
            ok = lane >= k
        cp = tl.gather(ca, src, 0)
        hp = tl.gather(ha, src, 0)
        # compose: earlier (in scan order) segment first, then this one
        hn = ha + ca * hp
        cn = ca * cp
        ha = tl.where(ok, hn, ha)
        ca = tl.where(ok, cn, ca)
    # exclusive: shift by one lane
    if REV:
        src1 = tl.minimum(lane + 1, 31)
        ok1 = lane < 31
    else:
        src1 = tl.maximum(lane - 1, 0)
        ok1 = lane > 0
    hin = tl.where(ok1, tl.gather(ha, src1, 0), 0.0)
    cin = tl.where(ok1, tl.gather(ca, src1, 0), 1.0)
    hfull = h + c * hin[:, None]
    cfull = c * cin[:, None]
    tl.store(o_ptr + offs, hfull + cfull)
'''
path = os.path.join(tempfile.mkdtemp(), "pk.py"); open(path, "w").write(SRC)
import importlib.util
spec = importlib.util.spec_from_file_location("pk", path); mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
target = GPUTarget("cuda", 90, 32)
opts = triton.compiler.make_backend(target).parse_options(dict(num_warps=1, num_stages=1)).__dict__
tools = os.path.dirname(triton.__file__) + "/backends/nvidia/bin/"
for name in ("k1d", "k2d"):
    for rev in (False, True):
        fn = getattr(mod, name)
        sig = {"a_ptr": "*fp32", "x_ptr": "*fp32", "o_ptr": "*fp32", "REV": "constexpr"}
        attrs = {(0,): [["tt.divisibility", 16]], (1,): [["tt.divisibility", 16]], (2,): [["tt.divisibility", 16]]}
        cc = triton.compile(triton.compiler.ASTSource(fn=fn, signature=sig, constexprs={"REV": rev}, attrs=attrs), target=target, options=opts)
        with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
            f.write(cc.asm["cubin"]); f.flush()
            sass = subprocess.run([tools + "nvdisasm", "-c", f.name], capture_output=True, text=True).stdout
        ins = [l for l in sass.splitlines() if re.search(r"/\*[0-9a-f]{4}\*/", l)]
        shfl = sum("SHFL" in l for l in ins); sts = sum(("STS" in l or "LDS" in l) for l in ins); bar = sum("BAR" in l for l in ins)
        print(f"{name} rev={rev}: {len(ins)} instr, SHFL {shfl}, LDS/STS {sts}, BAR {bar}")
        
