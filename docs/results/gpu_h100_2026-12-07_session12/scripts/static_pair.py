"""Static sm_90 resources and state-loop SASS of the K-channel backward (tf_pair.py beside this script) vs shipped."""
import sys, os, re, subprocess, tempfile, collections, importlib.util
sys.path.insert(0, "/work/main/docs/results/static_sm90_2026-12-07")
import aot_chunked as A
import triton
from triton.backends.compiler import GPUTarget
A.SHAPES["long"] = (4, 768, 16384, 16, 1, True)
text = open(f"{A.ROOT}/kernels/selective/triton_fused.py").read()
body = text[text.index("@triton.jit\ndef _first_order"):text.index("def _launch_config")]
common = open(f"{A.ROOT}/kernels/selective/_triton_common.py").read()
common = common[common.index("# exp(x)"):]
pair = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_pair.py")).read()
pair = pair[pair.index("@triton.jit"):pair.index("class Variant")]
src = ("import triton\nimport triton.language as tl\n" + common +
       "\n_LOG2E = LOG2E\n_softplus = softplus\nLOG2E = tl.constexpr(_LOG2E)\n" + body + "\n" + pair)
path = os.path.join(tempfile.mkdtemp(), "kk.py"); open(path, "w").write(src)
spec = importlib.util.spec_from_file_location("kk", path); mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)


def comp(fn, shape, block_l, K=None):
    b, dim, L, N, G, Z = A.SHAPES[shape]
    ints = dict(dim=dim, L=L, n_chunks=-(-L // block_l), d_per_group_B=dim // G, d_per_group_C=dim // G, G_B=G,
                G_C=G, su_b=dim * L, su_d=L, sdt_b=dim * L, sdt_d=L, sz_b=dim * L if Z else 0, sz_d=L if Z else 0,
                sdy_b=dim * L, sdy_d=L, sB_b=G * N * L, sB_g=N * L, sB_n=L, sB_t=1, sC_b=G * N * L, sC_g=N * L,
                sC_n=L, sC_t=1)
    consts = dict(N=N, BLOCK_L=block_l, HAS_D=True, HAS_Z=Z, HAS_BIAS=True, SOFTPLUS=True, REVERSE=False, K=K)
    bf16 = {"du_ptr", "ddelta_ptr", "dz_ptr", "u_ptr", "delta_ptr", "z_ptr", "dout_ptr", "B_ptr", "C_ptr"}
    sig, constexprs, attrs = {}, {}, {}
    for i, a in enumerate(fn.arg_names):
        if a in consts or (a in ints and ints[a] in (0, 1)):
            constexprs[a] = consts[a] if a in consts else ints[a]; sig[a] = "constexpr"
        elif a in ints:
            sig[a] = "i32"
            if ints[a] % 16 == 0: attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            sig[a] = "*bf16" if a in bf16 else "*fp32"; attrs[(i,)] = [["tt.divisibility", 16]]
    target = GPUTarget("cuda", 90, 32)
    opts = dict(num_warps=1, num_stages=1)
    cc = triton.compile(triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs),
                        target=target, options=triton.compiler.make_backend(target).parse_options(opts).__dict__)
    tools = os.path.dirname(triton.__file__) + "/backends/nvidia/bin/"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cc.asm["cubin"]); f.flush()
        usage = subprocess.run([tools + "cuobjdump", "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
        sass = subprocess.run([tools + "nvdisasm", "-c", f.name], capture_output=True, text=True).stdout
    regs = int(re.search(r"REG:(\d+)", usage).group(1)); stack = int(re.search(r"STACK:(\d+)", usage).group(1))
    lines = [l for l in sass.splitlines() if re.search(r"/\*[0-9a-f]{4}\*/", l)]
    addr = [int(re.search(r"/\*([0-9a-f]{4})\*/", l).group(1), 16) for l in lines]
    best = []
    for i, l in enumerate(lines):
        tgt = re.search(r"BRA.*\.L_x_(\d+)", l)
        if tgt:
            idx = sass.find(f".L_x_{tgt.group(1)}:")
            after = [x for x in sass[idx:].splitlines()[1:4] if re.search(r"/\*([0-9a-f]{4})\*/", x)]
            ta = int(re.search(r"/\*([0-9a-f]{4})\*/", after[0]).group(1), 16) if after else None
            if ta is not None and ta < addr[i]:
                body = [x for x, a in zip(lines, addr) if ta <= a <= addr[i]]
                if any("REDG" in x or "RED" in x for x in body) and (not best or len(body) < len(best)):
                    best = body
    ops = collections.Counter()
    for x in best:
        m = re.search(r"\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+)", x)
        if m: ops[m.group(1)] += 1
    lay = re.findall(r"#blocked\d* = .*", cc.asm["ttgir"])
    return regs, stack, len(best), ops, lay


for shape, bl in (("vim_s_layer", 128), ("long", 256)):
    for name, fn, k, blk in (("shipped", mod._bwd_kernel, None, bl), ("K2 BL64", mod._bwd_kernel_k, 2, 64),
                            ("K2 BL128", mod._bwd_kernel_k, 2, 128), ("K4 BL32", mod._bwd_kernel_k, 4, 32)):
        regs, stack, n, ops, lay = comp(fn, shape, blk, k)
        per_warp = -(-regs * 32 // 256) * 256
        print(f"{shape:12s} {name:9s} regs {regs:3d} stack {stack:3d} warps/SM {min(32, 65536 // per_warp):2d} "
              f"state loop {n} instr; per channel-state-step {n / ((k or 1) * blk):.2f}; SHFL {ops['SHFL']} "
              f"MUFU {ops['MUFU']} LDG {ops['LDG']} RED {ops['REDG']} FP {ops['FFMA'] + ops['FMUL'] + ops['FADD']}")
        for l in lay: print("     ", l[:150])
