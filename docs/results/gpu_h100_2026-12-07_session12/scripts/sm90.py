"""Shared by static_pair.py and static_pad.py: compile a chunked-scan kernel ahead of time for sm_90 without a GPU
(triton 3.6.0, the device's version) with the launcher's run-time specialisations, and read its resources and the
state loop's SASS.  Integers == 1 become constants and those divisible by 16 get tt.divisibility 16; pointers
are 16-byte aligned (what the launcher sees for freshly allocated tensors)."""
import collections
import importlib.util
import os
import re
import subprocess
import tempfile

import triton
from triton.backends.compiler import GPUTarget

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
BF16 = {"out_ptr", "du_ptr", "ddelta_ptr", "dz_ptr", "u_ptr", "delta_ptr", "z_ptr", "dout_ptr", "B_ptr", "C_ptr"}
_ADDR = re.compile(r"/\*([0-9a-f]{4})\*/")


def jit_module(text: str, extra: str = ""):
    """The @triton.jit functions of a triton_fused.py source text (plus `extra` jit source), as a module."""
    body = text[text.index("@triton.jit\ndef _first_order"):text.index("def _launch_config")]
    common = open(f"{ROOT}/kernels/selective/_triton_common.py").read()
    common = common[common.index("# exp(x)"):]
    src = ("import triton\nimport triton.language as tl\n" + common +
           "\n_LOG2E = LOG2E\n_softplus = softplus\nLOG2E = tl.constexpr(_LOG2E)\n" + body + "\n" + extra)
    # triton.jit reads a kernel's source through inspect, so the module must live in a file
    path = os.path.join(tempfile.mkdtemp(), "kk.py")
    open(path, "w").write(src)
    spec = importlib.util.spec_from_file_location("kk", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def scan_ints(dim, L, block_l, N, G, act, row, z=True):
    """The integer arguments of the chunked kernels: activations in rows of `act`, B / C (and dB / dC) in rows of
    `row` (both L when nothing is padded)."""
    return dict(dim=dim, L=L, L_out=row, n_chunks=-(-L // block_l), d_per_group_B=dim // G, d_per_group_C=dim // G,
                G_B=G, G_C=G, su_b=dim * act, su_d=act, sdt_b=dim * act, sdt_d=act,
                sz_b=dim * act if z else 0, sz_d=act if z else 0, sdy_b=dim * act, sdy_d=act,
                sB_b=G * N * row, sB_g=N * row, sB_n=row, sB_t=1, sC_b=G * N * row, sC_g=N * row, sC_n=row, sC_t=1)


def compile_sm90(fn, ints: dict, consts: dict) -> dict:
    """regs, stack bytes, SASS and ttgir of fn (one warp, no pipelining)."""
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
            sig[a] = "*bf16" if a in BF16 else "*fp32"
            attrs[(i,)] = [["tt.divisibility", 16]]
    target = GPUTarget("cuda", 90, 32)
    opts = triton.compiler.make_backend(target).parse_options(dict(num_warps=1, num_stages=1)).__dict__
    cc = triton.compile(triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs),
                        target=target, options=opts)
    tools = os.path.dirname(triton.__file__) + "/backends/nvidia/bin/"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cc.asm["cubin"])
        f.flush()
        usage = subprocess.run([tools + "cuobjdump", "--dump-resource-usage", f.name], capture_output=True,
                               text=True).stdout
        sass = subprocess.run([tools + "nvdisasm", "-c", f.name], capture_output=True, text=True).stdout
    return dict(regs=int(re.search(r"REG:(\d+)", usage).group(1)), stack=int(re.search(r"STACK:(\d+)", usage).group(1)),
                sass=sass, ttgir=cc.asm["ttgir"])


def state_loop(sass: str) -> list:
    """The instructions of the smallest loop (backward branch) that holds the atomics: the state loop."""
    lines = [line for line in sass.splitlines() if _ADDR.search(line)]
    addr = [int(_ADDR.search(line).group(1), 16) for line in lines]
    best = []
    for i, line in enumerate(lines):
        target = re.search(r"BRA.*\.L_x_(\d+)", line)
        if not target:
            continue
        after = [x for x in sass[sass.find(f".L_x_{target.group(1)}:"):].splitlines()[1:4] if _ADDR.search(x)]
        start = int(_ADDR.search(after[0]).group(1), 16) if after else None
        if start is not None and start < addr[i]:
            body = [x for x, a in zip(lines, addr) if start <= a <= addr[i]]
            if any("RED" in x for x in body) and (not best or len(body) < len(best)):
                best = body
    return best


def opcodes(body: list, keep_suffix=()) -> collections.Counter:
    """Opcode counts; the opcodes starting with one of keep_suffix keep their modifiers (LDG.E.64 vs LDG.E.U16)."""
    ops = collections.Counter()
    for x in body:
        m = re.search(r"\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+(?:\.[A-Z0-9_.]+)?)", x)
        if m:
            op = m.group(1)
            ops[op if keep_suffix and op.startswith(tuple(keep_suffix)) else op.split(".")[0]] += 1
    return ops
