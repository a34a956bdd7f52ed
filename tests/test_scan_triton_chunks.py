"""The Triton kernels' chunk-to-chunk paths (state checkpoints forward, adjoint carry backward).

At the small L the interpreter can afford, one chunk covers the whole sequence; forcing 32-step
chunks makes every case here cross several chunk boundaries, including a partial last chunk.
"""
import functools

import pytest
import torch

from conftest import TRITON_DEVICE, make_inputs, rel_err, reversed_reference, run_scan, upcast
from vision_mamba.kernels.selective import selective_scan_reference, triton_fused

pytestmark = pytest.mark.triton_interpret


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(triton_fused, "_launch_config", lambda length, n, forward_only=False: (32, 1))


@pytest.mark.parametrize("batch,dim,length,n,groups,options", [
    (1, 4, 100, 4, 2, True),    # 4 chunks, the last one partial
    (2, 3, 64, 1, 1, False),    # chunk boundaries exactly at the end
    (1, 2, 97, 16, 1, True),
])
def test_multi_chunk_matches_reference(small_chunks, batch, dim, length, n, groups, options):
    torch.manual_seed(length)
    ins = dict(u=torch.randn(batch, dim, length), delta=torch.randn(batch, dim, length) * 0.5,
               A=-torch.exp(torch.randn(dim, n) * 0.5), B=torch.randn(batch, groups, n, length),
               C=torch.randn(batch, groups, n, length))
    if options:
        ins.update(D=torch.randn(dim), z=torch.randn(batch, dim, length), delta_bias=torch.randn(dim) * 0.5)
    else:
        ins["delta"] = ins["delta"].abs()
    results = []
    for fn in (triton_fused.selective_scan_triton, selective_scan_reference):
        leaves = {k: v.to(TRITON_DEVICE, copy=True).requires_grad_() for k, v in ins.items()}
        y, last = fn(**leaves, delta_softplus=options, return_last_state=True)
        torch.manual_seed(0)
        ((y * torch.randn_like(y)).sum() + (last * torch.randn_like(last)).sum()).backward()
        results.append((y, last, {k: v.grad for k, v in leaves.items()}))
    (y, last, grads), (y_ref, last_ref, grads_ref) = results
    assert rel_err(y, y_ref) < 1e-5
    assert rel_err(last, last_ref) < 1e-5
    for name in grads_ref:
        assert rel_err(grads[name], grads_ref[name]) < 1e-5, name


@pytest.mark.parametrize("groups", [1, 2])
def test_strided_B_C(small_chunks, groups):
    """B / C as token-major slices of one projection output (time stride 2n + 3), as a caller may hand them
    over: the kernels take them in aligned rows (`_bc_rows`), their gradients flow back to the projection."""
    batch, dim, length, n = 2, 8, 75, 4
    torch.manual_seed(groups)
    proj = torch.randn(batch, length, groups, 2 * n + 3)
    ins = dict(u=torch.randn(batch, dim, length), delta=torch.randn(batch, dim, length) * 0.5,
               A=-torch.exp(torch.randn(dim, n) * 0.5), D=torch.randn(dim), z=torch.randn(batch, dim, length),
               delta_bias=torch.randn(dim) * 0.5)
    results = []
    for fn in (triton_fused.selective_scan_triton, selective_scan_reference):
        leaves = {k: v.to(TRITON_DEVICE, copy=True).requires_grad_() for k, v in ins.items()}
        p = proj.to(TRITON_DEVICE, copy=True).requires_grad_()
        B, C = p[..., 3:3 + n].permute(0, 2, 3, 1), p[..., 3 + n:].permute(0, 2, 3, 1)   # (batch, G, N, L) views
        assert B.stride(-1) != 1
        y, last = fn(**leaves, B=B, C=C, delta_softplus=True, return_last_state=True)
        torch.manual_seed(0)
        ((y * torch.randn_like(y)).sum() + (last * torch.randn_like(last)).sum()).backward()
        results.append((y, last, {**{k: v.grad for k, v in leaves.items()}, "proj": p.grad}))
    (y, last, grads), (y_ref, last_ref, grads_ref) = results
    assert rel_err(y, y_ref) < 1e-5
    assert rel_err(last, last_ref) < 1e-5
    for name in grads_ref:
        assert rel_err(grads[name], grads_ref[name]) < 1e-5, name


@pytest.mark.parametrize("block_l", [64, 128, 256])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_backward_neighbour_steps_across_chunk_widths(monkeypatch, block_l, reverse):
    """The backward takes dt (and dt u) of steps t - 1 and t + 1 from its own chunk's registers and carries
    the next chunk's first dt across the chunk boundary: checked at the launcher's other chunk widths
    (64 steps; 256 for long sequences; 128, the default), three chunks with a partial last one, both scan
    directions: the tiles of 2, 4 and 8 steps a lane, whose shifts and column flips are written out per width."""
    monkeypatch.setattr(triton_fused, "_launch_config", lambda length, n, forward_only=False: (block_l, 1))
    ins = make_inputs(1, 2, 2 * block_l + block_l // 2 + 1, 2, 1, seed=block_l, device=TRITON_DEVICE)
    got = run_scan(functools.partial(triton_fused.selective_scan_triton, reverse=reverse), ins, softplus=True,
                   return_last_state=True)
    ref = run_scan(reversed_reference if reverse else selective_scan_reference, upcast(ins), softplus=True,
                   return_last_state=True)
    assert rel_err(got[0], ref[0]) < 1e-5
    assert rel_err(got[1], ref[1]) < 1e-5
    for name, g in ref[2].items():
        assert rel_err(got[2][name], g) < 1e-5, name


def test_bc_rows_aligned_in_place_else_copied():
    """B / C reach the kernels with unit time stride and 16-element-aligned rows: in place where they already
    are (no copy), else copied into rows of L rounded up to 16 with zeros past L."""
    aligned = torch.randn(2, 3, 4, 64)
    assert triton_fused._bc_rows(aligned) == (aligned, 64)
    one_group = torch.randn(2, 1, 4, 48)[:, :1]
    assert triton_fused._bc_rows(one_group)[0] is one_group
    wider_rows = torch.randn(2, 3, 4, 80)[..., :64]           # row stride 80: aligned, read in place
    assert triton_fused._bc_rows(wider_rows) == (wider_rows, 64)
    for t in (torch.randn(2, 3, 4, 75), torch.randn(2, 75, 3, 4).permute(0, 2, 3, 1),
              torch.randn(2, 3, 4, 80)[..., :75], torch.randn(2, 3, 4, 72)[..., :64]):
        out, row = triton_fused._bc_rows(t)
        length = t.shape[-1]
        assert row == -(-length // 16) * 16 and out.shape == (*t.shape[:-1], row)
        assert out.is_contiguous() and torch.equal(out[..., :length], t) and not out[..., length:].any()
    # an unaligned row stride alone forces the copy; sizes of 1 do not count
    assert triton_fused._bc_rows(torch.randn(2, 3, 4, 72)[..., :64])[0].stride(-2) == 64
    assert triton_fused._bc_rows(torch.randn(1, 1, 1, 64))[1] == 64


@pytest.mark.parametrize("length,n,expected", [
    (197, 16, 128), (196, 1, 64), (256, 1, 64), (257, 1, 128), (3136, 1, 128), (4097, 16, 128),
    (16384, 16, 256), (16384, 1, 256), (49, 1, 64), (20, 16, 32),
])
def test_launch_config_per_shape_class(length, n, expected):
    """The measured rule (docs/benchmarks.md): 128-step chunks, 256 for long sequences, 64 for N = 1 at
    L <= 256, never longer than the sequence needs (32 at least); one warp.  checkpoint_rows follows it."""
    assert triton_fused._launch_config(length, n) == (expected, 1)
    u, A = torch.empty(1, 2, length), torch.empty(2, n)
    B = torch.empty(1, 1, n, length)
    assert triton_fused.checkpoint_rows(u, A, B, B, "chunked") == -(-length // expected) + 1


@pytest.mark.parametrize("length,n,expected", [(197, 16, 256), (196, 1, 256), (4097, 16, 256), (20, 16, 32)])
def test_forward_only_takes_wide_chunks(length, n, expected):
    """An inference forward on 16-bit inputs takes 256-step chunks (the forward's fastest width, session 13); a
    forward that stores checkpoints takes the backward's chunks, and so does fp32 (not measured wide).
    checkpoint_rows follows all three."""
    assert triton_fused._launch_config(length, n, forward_only=True) == (expected, 1)
    A, B = torch.empty(2, n), torch.empty(1, 1, n, length)
    training = triton_fused._launch_config(length, n)[0]
    for dtype, store, block in ((torch.bfloat16, False, expected), (torch.bfloat16, True, training),
                                (torch.float32, False, training)):
        u = torch.empty(1, 2, length, dtype=dtype)
        assert triton_fused.checkpoint_rows(u, A, B, B, "chunked", store) == -(-length // block) + 1


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_forward_only_matches_stored_forward(reverse):
    """The inference forward (256-step chunks, 8 steps a lane) gives the fp64 reference's y and final state, and
    the training forward's (128-step chunks), fp16, three chunks of the training width with a partial last one."""
    ins = make_inputs(1, 2, 300, 4, 1, seed=3, dtype=torch.float16, device=TRITON_DEVICE)
    kw = dict(delta_softplus=True, reverse=reverse, kernel="chunked")
    y_inf, ck_inf = triton_fused.forward(**ins, **kw, store_checkpoints=False)
    y_train, ck_train = triton_fused.forward(**ins, **kw, store_checkpoints=True)
    assert ck_inf.shape[2] == 3 and ck_train.shape[2] == 4
    assert rel_err(y_inf.float(), y_train.float()) < 2e-3
    assert rel_err(ck_inf[:, :, -1], ck_train[:, :, -1]) < 1e-5
    reference = reversed_reference if reverse else selective_scan_reference
    y_ref, last_ref = reference(**upcast(ins), delta_softplus=True, return_last_state=True)
    assert rel_err(y_inf.double().cpu(), y_ref) < 2e-3          # y rounded to fp16
    assert rel_err(ck_inf[:, :, -1].double().cpu(), last_ref) < 1e-5
