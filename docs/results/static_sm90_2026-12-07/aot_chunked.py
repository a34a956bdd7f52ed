"""Registers, spills and occupancy of the chunked selective-scan kernels, compiled ahead of time for sm_90
without a GPU (session 8, 2026-12-07; no device time was left).

Run with triton 3.6.0 (the device machine's version) from the repository root:
    python -m venv /tmp/tri36 && /tmp/tri36/bin/pip install triton==3.6.0
    /tmp/tri36/bin/python docs/results/static_sm90_2026-12-07/aot_chunked.py > table.md
Integer arguments get the run-time launcher's specialisations (== 1 -> constant, % 16 == 0 -> divisible
by 16, pointers 16-byte aligned) for the benchmark shapes' contiguous inputs.  Occupancy is what the
registers allow on an H100 / H200 SM (65536 registers, 64 warps, 32 blocks)."""
import importlib.util, json, os, re, subprocess, sys, tempfile
import triton
from triton.backends.compiler import GPUTarget

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
SHAPES = {"vim_s_layer": (64, 768, 197, 16, 1, True), "vim_s_1024": (8, 768, 4097, 16, 1, True),
          "vmamba_t_stage1": (64, 768, 3136, 1, 4, False)}
CONFIGS = [(128, 1, None), (64, 1, None), (256, 1, None), (256, 2, None), (128, 1, 96), (128, 1, 80)]


def load_kernels():
    """The @triton.jit functions of kernels/selective/triton_fused.py, without the host code (no torch)."""
    text = open(f"{ROOT}/kernels/selective/triton_fused.py").read()
    body = text[text.index("@triton.jit\ndef _first_order"):text.index("def _launch_config")]
    common = open(f"{ROOT}/kernels/selective/_triton_common.py").read()
    common = common[common.index("# exp(x)"):]
    src = ("import triton\nimport triton.language as tl\n" + common +
           "\n_LOG2E = LOG2E\n_softplus = softplus\nLOG2E = tl.constexpr(_LOG2E)\n" + body)
    # triton.jit reads a kernel's source through inspect, so the module must live in a file while it is used
    path = os.path.join(tempfile.mkdtemp(), "chunked_kernels.py")
    with open(path, "w") as f:
        f.write(src)
    spec = importlib.util.spec_from_file_location("chunked_kernels", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def compile_one(fn, shape, block_l, warps, maxnreg):
    b, dim, L, N, G, Z = SHAPES[shape]
    ints = dict(dim=dim, L=L, n_chunks=-(-L // block_l), d_per_group_B=dim // G, d_per_group_C=dim // G, G_B=G,
                G_C=G, su_b=dim * L, su_d=L, sdt_b=dim * L, sdt_d=L, sz_b=dim * L if Z else 0, sz_d=L if Z else 0,
                sdy_b=dim * L, sdy_d=L, sB_b=G * N * L, sB_g=N * L, sB_n=L, sB_t=1, sC_b=G * N * L, sC_g=N * L,
                sC_n=L, sC_t=1)
    consts = dict(N=N, BLOCK_L=block_l, HAS_D=True, HAS_Z=Z, HAS_BIAS=True, SOFTPLUS=True, REVERSE=False)
    bf16 = {"out_ptr", "du_ptr", "ddelta_ptr", "dz_ptr", "u_ptr", "delta_ptr", "z_ptr", "dout_ptr", "B_ptr", "C_ptr"}
    sig, constexprs, attrs = {}, {}, {}
    for i, a in enumerate(fn.arg_names):
        if a in consts or (a in ints and ints[a] in (0, 1)):
            constexprs[a] = consts[a] if a in consts else ints[a]
            sig[a] = "constexpr"
        elif a in ints:
            sig[a] = "i32"
            if ints[a] % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            sig[a] = "*bf16" if a in bf16 else "*fp32"
            attrs[(i,)] = [["tt.divisibility", 16]]
    target = GPUTarget("cuda", 90, 32)
    opts = dict(num_warps=warps, num_stages=1, **({"maxnreg": maxnreg} if maxnreg else {}))
    cc = triton.compile(triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs),
                        target=target, options=triton.compiler.make_backend(target).parse_options(opts).__dict__)
    tools = os.path.dirname(triton.__file__) + "/backends/nvidia/bin/"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cc.asm["cubin"])
        f.flush()
        usage = subprocess.run([tools + "cuobjdump", "--dump-resource-usage", f.name], capture_output=True,
                               text=True, check=True).stdout
        sass = subprocess.run([tools + "nvdisasm", "-c", f.name], capture_output=True, text=True, check=True).stdout
    regs, stack = int(re.search(r"REG:(\d+)", usage).group(1)), int(re.search(r"STACK:(\d+)", usage).group(1))
    per_warp = -(-regs * 32 // 256) * 256                     # registers are allocated per warp in 256s
    blocks = min(32, 64 // warps, 65536 // (per_warp * warps))
    return dict(shape=shape, kernel=fn.__name__, block_l=block_l, num_warps=warps, maxnreg=maxnreg, regs=regs,
                stack_bytes=stack, sass_instructions=len(re.findall(r"/\*[0-9a-f]{4}\*/", sass)),
                warps_per_sm=blocks * warps)


def main():
    mod = load_kernels()
    rows = [compile_one(getattr(mod, k), s, bl, w, r) for s in SHAPES for k in ("_fwd_kernel", "_bwd_kernel")
            for bl, w, r in CONFIGS]
    print("| shape | kernel | BLOCK_L | warps | maxnreg | registers | stack B | SASS | warps / SM |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['shape']} | {r['kernel']} | {r['block_l']} | {r['num_warps']} | {r['maxnreg'] or '-'} | "
              f"{r['regs']} | {r['stack_bytes']} | {r['sass_instructions']} | {r['warps_per_sm']} |")
    json.dump(dict(triton=triton.__version__, target="sm_90", rows=rows), sys.stderr, indent=1)


if __name__ == "__main__":
    main()
