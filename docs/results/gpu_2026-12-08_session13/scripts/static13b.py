"""Static sm_90 check of the working tree's chunked kernels at the other chunk widths (VEC = 1, 2, 8) and N = 1."""
import os, re, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "gpu_h100_2026-12-07_session12/scripts"))
from sm90 import ROOT, compile_sm90, jit_module, opcodes, scan_ints, state_loop  # noqa: E402
MEM = ("LDG", "RED", "STG")
head = jit_module(open(f"{ROOT}/docs/results/gpu_2026-12-08_session13/scripts/tf_shipped.py").read())
new = jit_module(open(f"{ROOT}/kernels/selective/triton_fused.py").read())
for L, BL, N, G, z in ((3136, 128, 1, 4, False), (196, 64, 1, 4, False), (16384, 256, 16, 1, True), (20, 32, 16, 1, True)):
    for kern in ("_bwd_kernel", "_fwd_kernel"):
        for name, mod in (("head", head), ("new", new)):
            row = L if mod is head else -(-L // 16) * 16
            ints = scan_ints(768, L, BL, N, G, act=L, row=row, z=z)
            if mod is new:
                ints["L_bc"] = ints.pop("L_out")
                for k in ("sB_t", "sC_t"):
                    ints.pop(k)
            else:
                ints.pop("L_out")
            if kern == "_fwd_kernel":
                for k in ("G_B", "G_C", "sdy_b", "sdy_d"):
                    ints.pop(k)
            consts = dict(N=N, BLOCK_L=BL, HAS_D=True, HAS_Z=z, HAS_BIAS=True, SOFTPLUS=True, REVERSE=False)
            if kern == "_fwd_kernel":
                consts["UNROLL"] = 2 if N > 1 else 1
            res = compile_sm90(getattr(mod, kern), ints, consts)
            ins = [l for l in res["sass"].splitlines() if re.search(r"/\*[0-9a-f]{4}\*/", l)]
            ops = opcodes(ins, keep_suffix=MEM)
            print(f"L={L} BL={BL} N={N} {kern} {name}: regs {res['regs']} stack {res['stack']} whole {len(ins)} instr SHFL {ops['SHFL']} MUFU {ops['MUFU']} "
                  f"{ {k: v for k, v in ops.items() if k.startswith(MEM)} }")
