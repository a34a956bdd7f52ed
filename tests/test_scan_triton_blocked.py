"""The Triton backend's two kernels ("blocked", "chunked") and the reverse (t = L-1 .. 0) scan, against the
fp64 reference: y, the last state and every gradient, in fp32 and bf16, across chunk and segment
boundaries, with time-major (strided) inputs read in place, and through the forward/backward pair.

Shapes are small (the interpreter runs every time step as Python); the blocked kernel's configuration is
forced down to 4-step chunks and several segments so that every fold and carry path runs.
"""
import functools

import pytest
import torch

from conftest import TIME_AXIS_INPUTS, TRITON_DEVICE, make_inputs, rel_err, reversed_reference, run_scan, upcast
from vision_mamba.kernels.selective import selective_scan_reference, triton_blocked, triton_fused

pytestmark = pytest.mark.triton_interpret

def check(ins, kernel, reverse, *, softplus=True, tol=1e-5, loss_on="both", ref_inputs=None):
    got = run_scan(functools.partial(triton_fused.selective_scan_triton, kernel=kernel, reverse=reverse), ins,
                   softplus=softplus, return_last_state=True, loss_on=loss_on)
    ref_fn = reversed_reference if reverse else selective_scan_reference
    ref = run_scan(ref_fn, upcast(ref_inputs or ins), softplus=softplus, return_last_state=True, loss_on=loss_on)
    errs = {"y": rel_err(got[0], ref[0]), "last": rel_err(got[1], ref[1])}
    errs.update({"d" + k: rel_err(got[2][k], g) for k, g in ref[2].items() if g is not None})
    bad = {k: v for k, v in errs.items() if not v < tol}
    assert not bad, f"{kernel} reverse={reverse}: above {tol}: {bad} (all {errs})"
    return got


@pytest.fixture
def small_blocks(monkeypatch):
    """4-step chunks, 3 forward and 2 backward segments, 4-channel blocks (several blocks, a masked tail)."""
    cfg = triton_blocked.BlockedConfig(block_d=4, chunk=4, n_segs=3, n_segs_bwd=2, num_warps=1, fwd_block_d=4)
    monkeypatch.setattr(triton_fused, "blocked_config", lambda *shape: cfg)
    # chunked: 32-step chunks
    monkeypatch.setattr(triton_fused, "_launch_config", lambda length, n, forward_only=False: (32, 1))


@pytest.mark.parametrize("kernel", ["blocked", "chunked"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("batch,dim,length,n,groups,options", [
    (1, 6, 37, 4, 1, True),     # odd L, partial last chunk and segment, 2 channel blocks (one masked)
    (1, 8, 33, 4, 2, False),    # two B/C groups, no D/z/bias, softplus off
])
def test_kernels_match_reference(small_blocks, kernel, reverse, batch, dim, length, n, groups, options):
    ins = make_inputs(batch, dim, length, n, groups, D=options, z=options, delta_bias=options, softplus=options,
                      seed=length + n, device=TRITON_DEVICE)
    check(ins, kernel, reverse, softplus=options)


@pytest.mark.parametrize("loss_on", ["y", "last"])
def test_blocked_default_config_and_loss_paths(loss_on):
    """The shipped configuration (one segment at this size) and the dout=None / dlast=None paths."""
    ins = make_inputs(2, 16, 29, 16, 1, seed=5, device=TRITON_DEVICE)
    check(ins, "blocked", True, loss_on=loss_on)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_chunked_reads_channel_major_views_in_place(small_blocks, reverse):
    """Vim's channel-major mixer hands the chunked kernel views with unit time stride but other batch /
    channel strides (the gate z: half of the in-projection's output; u: a causal conv's first L outputs):
    read in place, not copied, forward and backward."""
    ins = make_inputs(2, 6, 37, 4, 1, seed=3, device=TRITON_DEVICE)
    buf = torch.randn(2, 18, 40, device=TRITON_DEVICE)
    views = dict(ins)
    for k, lo in (("u", 0), ("delta", 6), ("z", 12)):
        view = buf[:, lo:lo + 6, 3:]
        view.copy_(ins[k])
        views[k] = view
    assert all(not views[k].is_contiguous() and views[k].stride(-1) == 1 for k in ("u", "delta", "z"))
    assert all(triton_fused._rows(views[k])[0] is views[k] for k in ("u", "delta", "z"))
    check({k: v.detach() for k, v in views.items()}, "chunked", reverse, ref_inputs=ins)


@pytest.mark.parametrize("kernel", ["blocked", "chunked"])
def test_reads_time_major_inputs(small_blocks, kernel):
    """Vim's projections give (batch, L, dim) tensors viewed as (batch, dim, L): read through strides."""
    ins = make_inputs(1, 8, 21, 4, 1, seed=11, device=TRITON_DEVICE)
    strided = {k: (v.transpose(-1, -2).contiguous().transpose(-1, -2) if k in TIME_AXIS_INPUTS else v)
               for k, v in ins.items()}
    assert not strided["u"].is_contiguous() and strided["u"].stride(1) == 1
    check(strided, kernel, False, ref_inputs=ins)
    if kernel == "blocked":   # read through the strides; the chunked kernel makes one contiguous copy
        y = triton_fused.selective_scan_triton(**strided, delta_softplus=True, kernel="blocked")
        assert y.stride() == strided["u"].stride()       # y comes out in u's layout: no copy either way


@pytest.mark.parametrize("reverse,n,rank", [(False, 4, 3), (True, 8, 8)])
def test_blocked_forward_reads_token_major_slices(small_blocks, reverse, n, rank):
    """Inference on a token-major Vim mixer: u and delta (batch, L, dim), z the second half of the
    in-projection's (batch, L, 2 dim) output and B / C slices of the x projection's (batch, L, rank + 2N)
    output, all viewed as (batch, dim, L) and read in place; y comes out token-major."""
    batch, dim, length = 2, 6, 23
    ref = make_inputs(batch, dim, length, n, 1, seed=3 + n, device=TRITON_DEVICE)
    xz = torch.cat([ref["u"], ref["z"]], 1).transpose(1, 2).contiguous()           # (batch, L, 2 dim)
    proj = torch.cat([torch.randn(batch, rank, length, device=TRITON_DEVICE), ref["B"][:, 0], ref["C"][:, 0]], 1)
    proj = proj.transpose(1, 2).contiguous()                                           # (batch, L, rank + 2N)
    tm = dict(ref, u=xz[..., :dim].contiguous().transpose(1, 2), z=xz[..., dim:].transpose(1, 2),
              delta=ref["delta"].transpose(1, 2).contiguous().transpose(1, 2),
              B=proj[..., rank:rank + n].transpose(1, 2), C=proj[..., rank + n:].transpose(1, 2))
    assert tm["z"].stride(1) == 1 and tm["B"].stride(1) == 1 and not tm["z"].is_contiguous()
    with torch.no_grad():
        y, last = triton_fused.selective_scan_triton(**tm, delta_softplus=True, return_last_state=True,
                                                     kernel="blocked", reverse=reverse)
        ref_fn = reversed_reference if reverse else selective_scan_reference
        y_ref, last_ref = ref_fn(**upcast(ref), delta_softplus=True, return_last_state=True)
    assert y.stride(1) == 1                      # u's token-major layout
    assert rel_err(y, y_ref) < 1e-5 and rel_err(last, last_ref) < 1e-5


@pytest.mark.parametrize("kernel", ["blocked", "chunked"])
def test_bf16(small_blocks, kernel):
    ins = make_inputs(1, 8, 19, 4, 1, dtype=torch.bfloat16, seed=2, device=TRITON_DEVICE)
    got = check(ins, kernel, True, tol=1e-2)
    assert got[0].dtype == torch.bfloat16 and got[2]["u"].dtype == torch.bfloat16


def test_forward_backward_pair_and_inference_checkpoints(small_blocks):
    """The plain-function halves: store_checkpoints=False keeps only the final state (inference), and
    backward refuses those checkpoints with a named error."""
    ins = make_inputs(1, 8, 18, 4, 1, seed=4, device=TRITON_DEVICE)
    y, ckpt = triton_fused.forward(**ins, delta_softplus=True, kernel="blocked")
    y1, last = triton_fused.forward(**ins, delta_softplus=True, kernel="blocked", store_checkpoints=False)
    assert ckpt.shape == (1, 8, 18 // 4 + 2, 4) and last.shape == (1, 8, 1, 4)
    assert torch.equal(y, y1) and torch.allclose(ckpt[:, :, -1], last[:, :, 0], rtol=1e-6, atol=1e-6)
    dout = torch.randn_like(y)
    grads = triton_fused.backward(dout, None, **ins, checkpoints=ckpt, delta_softplus=True, kernel="blocked")
    assert [g.shape for g in grads] == [ins[k].shape for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    with pytest.raises(ValueError, match="checkpoints have shape"):
        triton_fused.backward(dout, None, **ins, checkpoints=last, delta_softplus=True, kernel="blocked")


def test_kernel_choice_and_bad_names():
    # the measurements in choose_kernel's docstring keep the chunked kernel for training everywhere
    assert triton_fused.choose_kernel(8, 768, 4097, 16) == "chunked"
    assert triton_fused.choose_kernel(64, 768, 197, 16) == "chunked"
    assert triton_fused.choose_kernel(64, 768, 3136, 1, 4, 4) == "chunked"
    cfg = triton_blocked.default_config(4, 768, 16384, 16)
    assert cfg.block_d * 16 == 256 and cfg.n_segs > 1          # few programs: the sequence is segmented
    assert triton_blocked.default_config(64, 768, 197, 16).n_segs_bwd == 1
    # inference picks the blocked forward only for token-major inputs with enough parallel work
    assert triton_fused.choose_kernel(8, 768, 6085, 16, inference=True, token_major=True) == "blocked"
    assert triton_fused.choose_kernel(8, 768, 6085, 16, inference=True) == "chunked"
    assert triton_fused.choose_kernel(8, 768, 197, 16, inference=True, token_major=True) == "chunked"
    assert triton_fused.choose_kernel(64, 768, 3136, 1, 4, 4, inference=True, token_major=True) == "chunked"
    assert triton_blocked.fits(768, 4, 4, triton_blocked.default_config(2, 768, 64, 8, 4, 4).block_d)
    ins = make_inputs(1, 2, 5, 4, 1, device=TRITON_DEVICE)
    with pytest.raises(ValueError, match="kernel='fast'"):
        triton_fused.selective_scan_triton(**ins, kernel="fast")
    with pytest.raises(ValueError, match="block_d=3"):
        triton_blocked.BlockedConfig(block_d=3, chunk=4, n_segs=1, n_segs_bwd=1, num_warps=1)


def test_bidirectional_mixer_triton_matches_torch():
    """Vim's mixer on the Triton backend (reverse scan in place, strided B/C/delta/z, anti-causal conv)
    equals the same mixer on the torch backend (flips around the scan), output and every gradient."""
    from vision_mamba.layers.mamba_mixer import MambaMixer
    torch.manual_seed(0)
    mixer = MambaMixer(8, d_state=4, bidirectional=True, if_divide_out=True).to(TRITON_DEVICE)
    x = torch.randn(1, 11, 8, device=TRITON_DEVICE)
    outs = []
    for backend in ("triton", "torch"):
        mixer.scan_backend = backend
        mixer.zero_grad()
        xi = x.clone().requires_grad_()
        y = mixer(xi)
        (y * torch.linspace(-1, 1, y.numel(), device=y.device).view_as(y)).sum().backward()
        outs.append((y.detach(), xi.grad, {k: p.grad.clone() for k, p in mixer.named_parameters()}))
    (y, gx, gp), (y_ref, gx_ref, gp_ref) = outs
    assert rel_err(y, y_ref) < 1e-5 and rel_err(gx, gx_ref) < 1e-5
    for name in gp_ref:
        assert rel_err(gp[name], gp_ref[name]) < 1e-5, name


def test_no_checkpoints_under_no_grad(monkeypatch):
    """Inference stores only the final state even when parameters require grad (as in a model)."""
    seen = []
    real = triton_fused.forward

    def spy(*args, **kw):
        out = real(*args, **kw)
        seen.append(out[1].shape[2])
        return out
    monkeypatch.setattr(triton_fused, "forward", spy)
    ins = make_inputs(1, 4, 9, 4, 1, seed=1, device=TRITON_DEVICE)
    ins["D"].requires_grad_()
    with torch.no_grad():
        triton_fused.selective_scan_triton(**ins, delta_softplus=True, kernel="blocked")
    triton_fused.selective_scan_triton(**ins, delta_softplus=True, kernel="blocked")
    assert seen[0] == 1 and seen[1] > 1


@pytest.mark.parametrize("kernel", ["auto", "chunked", "blocked"])
@pytest.mark.parametrize("store", [True, False])
def test_checkpoint_rows_match_the_real_buffer(monkeypatch, kernel, store):
    """The custom op's fake forward reports `checkpoint_rows`: it must be the row count the launcher
    really allocates (for each kernel, stored or not, channel- and token-major inputs), and the op's
    fake implementation must agree with the real one (opcheck)."""
    from vision_mamba.kernels.selective.triton_op import selective_scan_triton_fwd
    monkeypatch.setattr(triton_fused, "BLOCKED_MIN_WARPS", 0)     # let "auto" pick blocked on token-major inputs
    ins = make_inputs(1, 8, 45, 4, 1, seed=6, device=TRITON_DEVICE)
    tm = dict(ins, u=ins["u"].transpose(1, 2).contiguous().transpose(1, 2))
    for inputs in (ins, tm):
        _, ckpt = triton_fused.forward(**inputs, delta_softplus=True, kernel=kernel, store_checkpoints=store)
        rows = triton_fused.checkpoint_rows(inputs["u"], inputs["A"], inputs["B"], inputs["C"], kernel, store)
        assert ckpt.shape[2] == rows
        args = tuple(inputs[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias"))
        torch.library.opcheck(selective_scan_triton_fwd, (*args, True, False, kernel, store),
                              test_utils=("test_schema", "test_faketensor"))


def test_eager_calls_take_the_function_traced_calls_the_custom_ops(monkeypatch):
    """selective_scan(backend="triton") runs eager calls through the autograd.Function (less Python per
    call) and traced ones through the custom ops, with the same y, last state and gradients; fake tensors
    count as traced, and dynamo captures the custom op (no graph break)."""
    import torch._dynamo as dynamo
    from torch._subclasses.fake_tensor import FakeTensorMode

    from vision_mamba.kernels import selective_scan
    from vision_mamba.kernels import _tracing
    from vision_mamba.kernels.selective import triton_op

    ins = make_inputs(2, 4, 37, 4, 1, seed=8, device=TRITON_DEVICE)
    scan = functools.partial(selective_scan, backend="triton")
    calls = []
    real = triton_fused.selective_scan_triton
    monkeypatch.setattr(triton_fused, "selective_scan_triton", lambda *a, **k: calls.append(1) or real(*a, **k))
    eager = run_scan(scan, ins, softplus=True, return_last_state=True)
    assert calls == [1]
    with monkeypatch.context() as m:
        m.setattr(triton_op, "traced", lambda *tensors: True)
        op = run_scan(scan, ins, softplus=True, return_last_state=True)
    assert calls == [1], "the traced path must not go through the autograd.Function"
    assert rel_err(op[0], eager[0]) < 1e-6 and rel_err(op[1], eager[1]) < 1e-6
    for name, g in eager[2].items():
        assert rel_err(op[2][name], g) < 1e-6, name

    with FakeTensorMode():
        fake = torch.empty(3)
    plain = torch.empty(3)
    assert _tracing.traced(plain, fake) and not _tracing.traced(plain, torch.nn.Parameter(plain), None)

    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward
    dynamo.reset()
    try:
        torch.compile(lambda kw: scan(**kw, delta_softplus=True), backend=capture, fullgraph=True)(ins)
    finally:
        dynamo.reset()
    targets = [str(node.target) for gm in graphs for node in gm.graph.nodes]
    assert any("selective_scan_triton_fwd" in t for t in targets), targets
