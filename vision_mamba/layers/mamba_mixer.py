"""Mamba-1 token mixer (Gu & Dao, 2023) and the bidirectional "bimamba v2" form of Vision Mamba.

    x, z = in_proj(tokens)                     # (B, L, 2 * d_inner) split in two
    x = silu(causal depthwise conv1d(x))       # d_conv taps, left zero padding
    dt, B, C = x_proj(x)                       # dt of rank dt_rank, B and C of width d_state
    y = selective_scan(x, dt_proj(dt), A, B, C, D, z, softplus)   # y *= silu(z) inside the scan
    out = out_proj(y)

Bidirectional (Vim's bimamba_type="v2"): in_proj and out_proj are shared; a second set of
conv1d_b, x_proj_b, dt_proj_b, A_b_log, D_b scans the reversed sequence (x and z both reversed), its
output is reversed back and added to the forward one, and `if_divide_out` halves the sum before
out_proj.  Nothing is actually flipped: conv1d_b on the reversed sequence, reversed back, is the
anti-causal conv with the taps flipped, the projections act per token, and the scan runs backwards in
time (the Triton backend's reverse=True; other backends flip around the scan).  Parameter names are those of mamba_ssm's `Mamba` module (Vim's fork), so official state
dicts load unchanged.

Layouts: training runs channel-major ((B, channels, L), what the chunked Triton scan and its backward
read); inference where the scan prefers token-major inputs (`prefers_token_major`: the Triton backend
with enough parallel work, e.g. Vim-S at 1248 px) keeps every tensor (B, L, channels) and hands the conv
and the scan transposed views, so no transposed copy is made and every projection is an aligned matmul.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from vision_mamba.kernels import selective_scan
from vision_mamba.kernels.selective import prefers_token_major
from vision_mamba.kernels.conv1d import conv1d_silu

# parameter-name suffix of each scan direction: "" forward (mamba_ssm's names), "_b" backward (Vim's)
_DIRECTIONS = {False: ("",), True: ("", "_b")}


def _names(suffix: str) -> dict:
    """Official parameter names of one scan direction ("A_b_log", not "A_log_b")."""
    return dict(conv1d="conv1d" + suffix, x_proj="x_proj" + suffix, dt_proj="dt_proj" + suffix,
                A_log=f"A{suffix}_log", D="D" + suffix)


def _batched(weight: torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    """weight as a (batch, out, in) stride-0 view for bmm, cast once to the autocast dtype first (autocast
    would otherwise cast the expanded view: batch copies of the weight)."""
    dev = like.device.type
    if torch.amp.is_autocast_available(dev) and torch.is_autocast_enabled(dev) and weight.is_floating_point():
        weight = weight.to(torch.get_autocast_dtype(dev))
    return weight.expand(batch, -1, -1)


def _channel_major_linear(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """nn.Linear on channel-major tokens: weight (out, in), x (B, in, L) with either unit stride -> (B, out,
    L) contiguous, in one bmm with no copy of x or of the output (F.linear on x.transpose(1, 2), or
    torch.matmul's folding, copies x or the output to get there)."""
    return torch.bmm(_batched(weight, x.shape[0], x), x)


def _linear(weight: torch.Tensor, x: torch.Tensor, token_major: bool) -> torch.Tensor:
    """nn.Linear (no bias) over the channels of x (B, in, L) -> (B, out, L), in x's layout: a plain
    matmul on the (B, L, in) tensor behind a token-major view, else `_channel_major_linear`."""
    if token_major:
        return F.linear(x.transpose(1, 2), weight).transpose(1, 2)
    return _channel_major_linear(weight, x)


class _Direction(NamedTuple):
    conv1d: nn.Conv1d
    x_proj: nn.Linear
    dt_proj: nn.Linear
    A_log: nn.Parameter
    D: nn.Parameter


def init_dt_proj(dt_proj: nn.Linear, dt_min: float = 1e-3, dt_max: float = 0.1, dt_init: str = "random",
                 dt_scale: float = 1.0, dt_init_floor: float = 1e-4) -> None:
    """Mamba's dt projection init: weight constant or uniform in +-dt_scale * dt_rank**-0.5 (keeps the
    variance of dt at init), bias = softplus^-1(dt) with dt log-uniform in [dt_min, dt_max] so that
    the initial step sizes span that range.  The bias is marked `_no_reinit` so that a model-level
    init that zeroes Linear biases (mamba_ssm's and Vim's `_init_weights`) leaves it alone."""
    std = dt_proj.in_features ** -0.5 * dt_scale
    with torch.no_grad():
        if dt_init == "constant":
            dt_proj.weight.fill_(std)
        elif dt_init == "random":
            dt_proj.weight.uniform_(-std, std)
        else:
            raise ValueError(f"init_dt_proj: dt_init={dt_init!r}, expected 'random' or 'constant'")
        log_dt = torch.rand(dt_proj.out_features, device=dt_proj.bias.device) * (
            math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        dt = torch.exp(log_dt).clamp(min=dt_init_floor)
        dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
    dt_proj.bias._no_reinit = True


class MambaMixer(nn.Module):
    """(B, L, dim) -> (B, L, dim) Mamba-1 mixer; `bidirectional=True` is Vim's bimamba v2.

    Args:
        dim: model width (mamba_ssm's d_model).
        d_state: SSM state size N.  d_conv: causal conv taps.  expand: d_inner = expand * dim.
        dt_rank: rank of the dt projection, "auto" = ceil(dim / 16).
        dt_min, dt_max, dt_init, dt_scale, dt_init_floor: dt projection init (see `init_dt_proj`).
        conv_bias, bias: biases of the conv1d and of in_proj/out_proj.
        bidirectional: add the backward scan (conv1d_b, x_proj_b, dt_proj_b, A_b_log, D_b).
        if_divide_out: average instead of sum the two directions (Vim: True).
        scan_backend: `selective_scan` backend ("auto", "torch", "triton", "reference").
    """

    def __init__(self, dim: int, d_state: int = 16, d_conv: int = 4, expand: float = 2,
                 dt_rank: Union[int, str] = "auto", dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init: str = "random", dt_scale: float = 1.0, dt_init_floor: float = 1e-4,
                 conv_bias: bool = True, bias: bool = False, bidirectional: bool = False,
                 if_divide_out: bool = False, scan_backend: str = "auto", device=None, dtype=None):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.dim = dim
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = int(expand * dim)
        self.dt_rank = math.ceil(dim / 16) if dt_rank == "auto" else int(dt_rank)
        self.bidirectional = bidirectional
        self.if_divide_out = if_divide_out
        self.scan_backend = scan_backend

        self.in_proj = nn.Linear(dim, 2 * self.d_inner, bias=bias, **dd)
        for suffix in _DIRECTIONS[bidirectional]:
            name = _names(suffix)
            self.add_module(name["conv1d"], nn.Conv1d(
                self.d_inner, self.d_inner, d_conv, padding=d_conv - 1, groups=self.d_inner, bias=conv_bias, **dd))
            self.add_module(name["x_proj"], nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False, **dd))
            dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **dd)
            init_dt_proj(dt_proj, dt_min, dt_max, dt_init, dt_scale, dt_init_floor)
            self.add_module(name["dt_proj"], dt_proj)
            # S4D-real init A = -(1..N) per channel; A and D stay fp32 whatever the module dtype
            a_log = torch.log(torch.arange(1, d_state + 1, dtype=torch.float32, device=device))
            A_log = nn.Parameter(a_log.repeat(self.d_inner, 1))
            D = nn.Parameter(torch.ones(self.d_inner, device=device))
            A_log._no_weight_decay = D._no_weight_decay = True
            self.register_parameter(name["A_log"], A_log)
            self.register_parameter(name["D"], D)
        self.out_proj = nn.Linear(self.d_inner, dim, bias=bias, **dd)

    def _direction(self, suffix: str) -> _Direction:
        return _Direction(**{field: getattr(self, name) for field, name in _names(suffix).items()})

    def _conv(self, x: torch.Tensor, p: _Direction, reverse: bool) -> torch.Tensor:
        # causal conv + SiLU in one kernel on the Triton path; conv1d_b over the reversed sequence is the
        # anti-causal conv with the taps flipped (reverse=True), so nothing is flipped
        conv_backend = "triton" if self.scan_backend == "triton" or (self.scan_backend == "auto" and x.is_cuda) \
            else "torch"
        return conv1d_silu(x, p.conv1d.weight.squeeze(1), p.conv1d.bias, reverse, backend=conv_backend)

    def _ssm(self, p: _Direction, x, delta, B, C, z, reverse: bool) -> torch.Tensor:
        # dt_proj's bias enters the scan as delta_bias
        return selective_scan(x, delta, -torch.exp(p.A_log.float()), B, C, p.D.float(), z,
                              p.dt_proj.bias.float(), True, reverse=reverse, backend=self.scan_backend)

    def _scan(self, x: torch.Tensor, z: torch.Tensor, p: _Direction, reverse: bool, token_major: bool) -> torch.Tensor:
        """x, z (B, d_inner, L) -> gated SSM output (B, d_inner, L) of one direction, in x's layout: channel-
        major (unit time stride) or token-major ((B, L, d_inner) views); reverse=True is the backward
        direction, in the original time order."""
        x = self._conv(x, p, reverse)
        dt, B, C = torch.split(_linear(p.x_proj.weight, x, token_major), [self.dt_rank, self.d_state, self.d_state],
                               dim=1)
        return self._ssm(p, x, _linear(p.dt_proj.weight, dt, token_major), B, C, z, reverse)

    def _token_major(self, x: torch.Tensor) -> bool:
        """Inference where the scan backend prefers token-major inputs (see `prefers_token_major`)."""
        if torch.is_grad_enabled() and (x.requires_grad or any(q.requires_grad for q in self.parameters())):
            return False
        return prefers_token_major(x.shape[0], self.d_inner, x.shape[1], self.d_state, backend=self.scan_backend,
                                   device=x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"MambaMixer: x has shape {tuple(x.shape)}, expected (B, L, dim={self.dim})")
        # token-major (inference where the scan prefers it): every tensor stays (B, L, channels) and the conv
        # and the scan get transposed views: no copies, and the projections keep cuBLAS's aligned kernels
        # whatever L is.  Channel-major otherwise: (B, channels, L) with unit time stride, what the chunked
        # scan and its backward read, after one transposed copy of in_proj's output (as bmm on the channel-
        # major side in_proj / out_proj would have leading dimension L, odd for Vim (197, 6085 tokens),
        # and cuBLAS falls back to unaligned kernels 3-4x slower than the copy: H100 profile, docs/benchmarks.md)
        token_major = self._token_major(x)
        xz = self.in_proj(x).transpose(1, 2)
        if not token_major:
            xz = xz.contiguous()
        x, z = xz.chunk(2, dim=1)         # views: z and the conv's input are read in place
        y = self._scan(x, z, self._direction(""), False, token_major)
        if self.bidirectional:
            y = y + self._scan(x, z, self._direction("_b"), True, token_major)
            if self.if_divide_out:
                y = y / 2
        return self.out_proj(y.transpose(1, 2))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
                f"bidirectional={self.bidirectional}, if_divide_out={self.if_divide_out}, "
                f"scan_backend={self.scan_backend!r}")
