"""Static sm_90 view of why the aligned-row backward (tf_padded.patch) was slower: layouts and loads of the state
loop at L = 197 in 208-element rows, against the shipped kernel at L = 197 and L = 192, and of the two prepared
variants (tf_padded2.patch, tf_padded3.patch)."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sm90 import ROOT, compile_sm90, jit_module, opcodes, scan_ints, state_loop  # noqa: E402
from variant_src import patched  # noqa: E402

MEM = ("LDG", "RED", "STG")
CONSTS = dict(N=16, BLOCK_L=128, HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, REVERSE=False)
shipped = jit_module(open(f"{ROOT}/kernels/selective/triton_fused.py").read())
padded, padded2, padded3 = (jit_module(patched(f"{v}.patch")) for v in ("tf_padded", "tf_padded2", "tf_padded3"))
# (name, module, L, row length of B / C and dB / dC, row length of the activations)
for name, mod, L, row, act in (("shipped L=197", shipped, 197, 197, 197), ("shipped L=192", shipped, 192, 192, 192),
                               ("padded L=197 row 208", padded, 197, 208, 208),
                               ("padded2 L=197 row 208", padded2, 197, 208, 208),
                               ("padded3 L=197 B/C rows 208", padded3, 197, 208, 197)):
    res = compile_sm90(mod._bwd_kernel, scan_ints(768, L, 128, 16, 1, act=act, row=row), CONSTS)
    body = state_loop(res["sass"])
    ops = opcodes(body, keep_suffix=MEM)
    mem = {k: v for k, v in ops.items() if k.startswith(MEM)}
    print(f"{name:22s} regs {res['regs']:3d} state loop {len(body):4d} instr, SHFL {ops['SHFL']:3d}, MUFU {ops['MUFU']}, {mem}")
    layouts = sorted(set(re.findall(r"sizePerThread = \[[0-9, ]+\], threadsPerWarp = \[[0-9, ]+\]", res["ttgir"])))
    print("    layouts:", "; ".join(layouts))
