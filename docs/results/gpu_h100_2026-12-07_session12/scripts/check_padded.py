"""Interpreter check: the backward of the variant tf_padded3.patch (or the patch named in argv[1], e.g.
tf_padded2.patch; aligned rows, zero padding, loads masked at the row length)
equals the shipped backward, with strided B / C, a final-state gradient, both directions, several lengths."""
import os, sys
os.environ["TRITON_INTERPRET"] = "1"
import torch
from vision_mamba.kernels.selective import triton_fused as shipped
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from variant_src import load  # noqa: E402

VARIANT = sys.argv[1] if len(sys.argv) > 1 else "tf_padded3.patch"
p2 = load(VARIANT)
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
