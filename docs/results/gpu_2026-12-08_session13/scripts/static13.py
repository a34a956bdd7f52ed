"""Static sm_90 state loops of the working tree's chunked kernels (B / C rows aligned; reversed scan in memory
order) against HEAD's, both directions, L = 197 (B / C rows of 208) and L = 192."""
import os, re, sys
S12 = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "gpu_h100_2026-12-07_session12/scripts")
sys.path.insert(0, S12)
from sm90 import ROOT, compile_sm90, jit_module, opcodes, scan_ints, state_loop  # noqa: E402
MEM = ("LDG", "RED", "STG")
new = jit_module(open(f"{ROOT}/kernels/selective/triton_fused.py").read().replace("\n@triton.jit\ndef _first_order", "\n@triton.jit\ndef _first_order", 1))
head = jit_module(open(f"{ROOT}/docs/results/gpu_2026-12-08_session13/scripts/tf_shipped.py").read())
for kern in ("_bwd_kernel", "_fwd_kernel"):
    for rev in (False, True):
        for name, mod, L, row in (("head", head, 197, 197), ("head", head, 192, 192), ("new", new, 197, 208), ("new", new, 192, 192)):
            ints = scan_ints(768, L, 128, 16, 1, act=L, row=row)
            if mod is new:
                ints["L_bc"] = ints.pop("L_out")
                for k in ("sB_t", "sC_t"):
                    ints.pop(k)
                ints["sB_b"] = ints["sC_b"] = 16 * row     # G = 1: group stride read as 0
                ints["sB_g"] = ints["sC_g"] = 0
            else:
                ints.pop("L_out")
            if kern == "_fwd_kernel":
                for k in ("G_B", "G_C", "sdy_b", "sdy_d"):
                    ints.pop(k, None)
            consts = dict(N=16, BLOCK_L=128, HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, REVERSE=rev)
            if kern == "_fwd_kernel":
                consts["UNROLL"] = 2
            res = compile_sm90(getattr(mod, kern), ints, consts)
            body = state_loop(res["sass"]) if kern == "_bwd_kernel" else None
            if body is None:
                sass = res["sass"]
                n = len([l for l in sass.splitlines() if re.search(r"/\*[0-9a-f]{4}\*/", l)])
                ops = opcodes([l for l in sass.splitlines() if re.search(r"/\*[0-9a-f]{4}\*/", l)], keep_suffix=MEM)
                mem = {k: v for k, v in ops.items() if k.startswith(MEM)}
                print(f"{kern} rev={int(rev)} {name:4s} L={L} row {row}: regs {res['regs']} whole kernel {n} instr SHFL {ops['SHFL']} {mem}")
            else:
                ops = opcodes(body, keep_suffix=MEM)
                mem = {k: v for k, v in ops.items() if k.startswith(MEM)}
                print(f"{kern} rev={int(rev)} {name:4s} L={L} row {row}: regs {res['regs']} state loop {len(body)} instr SHFL {ops['SHFL']} {mem}")
