"""Interpreter check: the backward of scripts/tf_padded2.py (or the file named in argv[1], e.g. tf_padded3.py) (aligned rows, zero padding, loads masked at the row length)
equals the shipped backward, with strided B / C, a final-state gradient, both directions, several lengths."""
import importlib.util, os, sys
os.environ["TRITON_INTERPRET"] = "1"
import torch
from vision_mamba.kernels.selective import triton_fused as shipped
here = os.path.dirname(os.path.abspath(__file__))
VARIANT = sys.argv[1] if len(sys.argv) > 1 else "tf_padded2.py"
src = open(f"{here}/{VARIANT}").read()
for rel, absolute in (("from . import triton_blocked", "from vision_mamba.kernels.selective import triton_blocked"),
                      ("from ._common", "from vision_mamba.kernels.selective._common"),
                      ("from ._triton_common", "from vision_mamba.kernels.selective._triton_common")):
    src = src.replace(rel, absolute)
open("/tmp/tf_padded2_mod.py", "w").write(src)
spec = importlib.util.spec_from_file_location("tf_padded2_mod", "/tmp/tf_padded2_mod.py")
p2 = importlib.util.module_from_spec(spec); spec.loader.exec_module(p2)
for mod in (shipped, p2):
    mod._launch_config = lambda length, n: (32, 1)
worst = 0.0
for L in (75, 40, 97, 64):
    for reverse in (False, True):
        torch.manual_seed(L)
        b, d, n = 2, 3, 4
        xbc = torch.randn(b, L, 2 * n + 3)
        ins = dict(u=torch.randn(b, d, L), delta=0.5 * torch.randn(b, d, L), A=-torch.exp(0.5 * torch.randn(d, n)),
                   B=xbc[..., 3:3 + n].transpose(1, 2).unsqueeze(1), C=xbc[..., 3 + n:].transpose(1, 2).unsqueeze(1),
                   D=torch.randn(d), z=torch.randn(b, d, L), delta_bias=0.5 * torch.randn(d) - 1)
        dout, dlast = torch.randn(b, d, L), torch.randn(b, d, n)
        kw = dict(delta_softplus=True, reverse=reverse, kernel="chunked")
        _, ck = shipped.forward(**ins, **kw)
        ref = shipped.backward(dout, dlast, **ins, checkpoints=ck, **kw)
        got = p2.backward(dout, dlast, **ins, checkpoints=ck, **kw)
        for name, g, r in zip(("du", "ddelta", "dA", "dB", "dC", "dD", "dz", "dbias"), got, ref):
            assert g.shape == r.shape, name
            err = ((g - r).norm() / r.norm()).item()
            worst = max(worst, err)
            assert err < 1e-6, (L, reverse, name, err)
print(f"{VARIANT} backward == shipped: 4 lengths x 2 directions, worst rel err {worst:.1e}")
