import sys, os, re
sys.path.insert(0, "/work/main/docs/results/static_sm90_2026-12-07")
import aot_chunked as A
import triton
from triton.backends.compiler import GPUTarget
A.SHAPES["long"] = (4, 768, 16384, 16, 1, True)
mod = A.load_kernels()
def comp(fn, shape, block_l):
    b, dim, L, N, G, Z = A.SHAPES[shape]
    ints = dict(dim=dim, L=L, n_chunks=-(-L // block_l), d_per_group_B=dim // G, d_per_group_C=dim // G, G_B=G,
                G_C=G, su_b=dim * L, su_d=L, sdt_b=dim * L, sdt_d=L, sz_b=dim * L if Z else 0, sz_d=L if Z else 0,
                sdy_b=dim * L, sdy_d=L, sB_b=G * N * L, sB_g=N * L, sB_n=L, sB_t=1, sC_b=G * N * L, sC_g=N * L,
                sC_n=L, sC_t=1)
    consts = dict(N=N, BLOCK_L=block_l, HAS_D=True, HAS_Z=Z, HAS_BIAS=True, SOFTPLUS=True, REVERSE=False, UNROLL=1)
    bf16 = {"out_ptr", "du_ptr", "ddelta_ptr", "dz_ptr", "u_ptr", "delta_ptr", "z_ptr", "dout_ptr", "B_ptr", "C_ptr"}
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
    return triton.compile(triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs),
                        target=target, options=triton.compiler.make_backend(target).parse_options(opts).__dict__)
if __name__ == "__main__":
    kname, shape, bl = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cc = comp(getattr(mod, kname), shape, bl)
    open(f"{kname}_{shape}.ttgir", "w").write(cc.asm["ttgir"])
    open(f"{kname}_{shape}.ptx", "w").write(cc.asm["ptx"])
    ptx = cc.asm["ptx"]
    print(kname, shape, "shfl:", len(re.findall(r"shfl\.sync", ptx)))
