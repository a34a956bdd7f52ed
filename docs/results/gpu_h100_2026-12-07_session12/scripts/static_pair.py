"""Static sm_90 resources and state-loop SASS of the K-channel backward (tf_pair.py beside this script) vs shipped."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sm90 import ROOT, compile_sm90, jit_module, opcodes, scan_ints, state_loop  # noqa: E402

SHAPES = {"vim_s_layer": (64, 768, 197, 16, 1), "long": (4, 768, 16384, 16, 1)}
pair = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_pair.py")).read()
mod = jit_module(open(f"{ROOT}/kernels/selective/triton_fused.py").read(),
                 pair[pair.index("@triton.jit"):pair.index("class Variant")])

for shape, bl in (("vim_s_layer", 128), ("long", 256)):
    b, dim, L, N, G = SHAPES[shape]
    for name, fn, k, blk in (("shipped", mod._bwd_kernel, None, bl), ("K2 BL64", mod._bwd_kernel_k, 2, 64),
                             ("K2 BL128", mod._bwd_kernel_k, 2, 128), ("K4 BL32", mod._bwd_kernel_k, 4, 32)):
        consts = dict(N=N, BLOCK_L=blk, HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, REVERSE=False, K=k)
        res = compile_sm90(fn, scan_ints(dim, L, blk, N, G, act=L, row=L), consts)
        body = state_loop(res["sass"])
        ops = opcodes(body)
        regs, per_warp = res["regs"], -(-res["regs"] * 32 // 256) * 256
        print(f"{shape:12s} {name:9s} regs {regs:3d} stack {res['stack']:3d} warps/SM {min(32, 65536 // per_warp):2d} "
              f"state loop {len(body)} instr; per channel-state-step {len(body) / ((k or 1) * blk):.2f}; SHFL {ops['SHFL']} "
              f"MUFU {ops['MUFU']} LDG {ops['LDG']} RED {ops['REDG']} FP {ops['FFMA'] + ops['FMUL'] + ops['FADD']}")
        for layout in re.findall(r"#blocked\d* = .*", res["ttgir"]):
            print("     ", layout[:150])
