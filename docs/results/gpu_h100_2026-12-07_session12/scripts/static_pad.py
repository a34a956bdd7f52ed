"""Static sm_90 view of why the aligned-row backward (scripts/tf_padded.patch) was slower: layouts and loads of the
state loop at L = 197 in 208-element rows, against the shipped kernel at L = 197 and L = 192."""
import sys, os, re, subprocess, tempfile, collections, importlib.util
import triton
from triton.backends.compiler import GPUTarget
ROOT = "/work/main"


def load(text, extra_sub=None):
    if extra_sub:
        for a, b in extra_sub:
            assert text.count(a) >= 1, a
            text = text.replace(a, b)
    body = text[text.index("@triton.jit\ndef _first_order"):text.index("def _launch_config")]
    common = open(f"{ROOT}/kernels/selective/_triton_common.py").read()
    common = common[common.index("# exp(x)"):]
    src = ("import triton\nimport triton.language as tl\n" + common +
           "\n_LOG2E = LOG2E\n_softplus = softplus\nLOG2E = tl.constexpr(_LOG2E)\n" + body)
    p = os.path.join(tempfile.mkdtemp(), "kk.py"); open(p, "w").write(src)
    spec = importlib.util.spec_from_file_location("kk", p); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m


def comp(fn, L, row, act=None, block_l=128, dim=768, N=16, G=1):
    act = act or row   # row length of u, delta, z, dout
    ints = dict(dim=dim, L=L, L_out=row, n_chunks=-(-L // block_l), d_per_group_B=dim // G, d_per_group_C=dim // G,
                G_B=G, G_C=G, su_b=dim * act, su_d=act, sdt_b=dim * act, sdt_d=act, sz_b=dim * act, sz_d=act,
                sdy_b=dim * act, sdy_d=act, sB_b=G * N * row, sB_g=N * row, sB_n=row, sB_t=1, sC_b=G * N * row,
                sC_g=N * row, sC_n=row, sC_t=1)
    consts = dict(N=N, BLOCK_L=block_l, HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, REVERSE=False)
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
    cc = triton.compile(triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs),
                        target=target, options=triton.compiler.make_backend(target).parse_options(dict(num_warps=1, num_stages=1)).__dict__)
    tools = os.path.dirname(triton.__file__) + "/backends/nvidia/bin/"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cc.asm["cubin"]); f.flush()
        usage = subprocess.run([tools + "cuobjdump", "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
        sass = subprocess.run([tools + "nvdisasm", "-c", f.name], capture_output=True, text=True).stdout
    regs = int(re.search(r"REG:(\d+)", usage).group(1))
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
                if any("RED" in x for x in body) and (not best or len(body) < len(best)):
                    best = body
    ops = collections.Counter()
    for x in best:
        m = re.search(r"\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+(?:\.[A-Z0-9_.]+)?)", x)
        if m:
            op = m.group(1)
            ops[op if op.startswith(("LDG", "RED", "STG")) else op.split(".")[0]] += 1
    lay = sorted(set(re.findall(r"sizePerThread = \[[0-9, ]+\], threadsPerWarp = \[[0-9, ]+\]", cc.asm["ttgir"])))
    return regs, len(best), ops, lay


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from variant_src import patched  # noqa: E402
shipped = load(open(f"{ROOT}/kernels/selective/triton_fused.py").read())
padded = load(patched("tf_padded.patch"))
padded2 = load(patched("tf_padded2.patch"))
padded3 = load(patched("tf_padded3.patch"))
for name, mod, L, row, *act in (("shipped L=197", shipped, 197, 197), ("shipped L=192", shipped, 192, 192),
                          ("padded L=197 row 208", padded, 197, 208),
                          ("padded2 L=197 row 208", padded2, 197, 208),
                          ("padded3 L=197 B/C rows 208", padded3, 197, 208, 197)):
    regs, n, ops, lay = comp(mod._bwd_kernel, L, row, *act)
    mem = {k: v for k, v in ops.items() if k.startswith(("LDG", "RED", "STG"))}
    print(f"{name:22s} regs {regs:3d} state loop {n:4d} instr, SHFL {ops['SHFL']:3d}, MUFU {ops['MUFU']}, {mem}")
    print("    layouts:", "; ".join(lay))
