"""Mamba-2 (SSD) token mixers: the Mamba-2 block for token sequences (Vim) and VMamba's 2-D "m0"
mixer, both on the shared `ssd_scan` and scan orderings.

The K routes of an ordering ("unidi" 1, "bidi" 2, "cross2d" 4) run as ONE ssd_scan over K times the
heads, B/C grouped by route (`scan_routes`), as SS2D does with the selective scan.

    SSDMixer  (B, L, dim): in_proj -> [z, xBC, dt]; xBC through a causal depthwise conv1d per route
              -> SiLU -> x, B, C; ssd_scan; routes merged; gated RMSNorm with z; out_proj.
              Parameter names are mamba_ssm's `Mamba2` (in_proj, conv1d, dt_bias, A_log, D, norm,
              out_proj); the backward route of the bidirectional form adds Vim's "_b" copies
              (conv1d_b, dt_bias_b, A_b_log, D_b), as bimamba v2 does for Mamba-1: in_proj, the norm
              and out_proj are shared.
    SSD2D     (B, C, H, W): VMamba's SS2D "m0_noz" (MzeroMiko/VMamba, classification/models/vmamba.py,
              SS2Dm0): in_proj -> depthwise conv2d -> act -> cross2d routes -> per-route x_proj to
              (dt, B, C) -> ssd_scan (dt_rank heads per route, headdim d_inner / dt_rank, one B/C group
              per route) -> cross_merge -> out_norm -> out_proj; no z gate.  Official parameter names
              and shapes, except the official conv2d sits at index 1 of a Sequential (`conv2d.1.weight`
              there, `conv2d.weight` here).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import LayerNorm2d

from vision_mamba.kernels import ROUTES, cross_merge, cross_scan, ssd_scan

from .ss2d import LN_EPS, Linear2d

# parameter-name suffix of each route of a 1-D ordering: "" forward (mamba_ssm's names), "_b" backward (Vim's)
_ROUTE_SUFFIXES = {"unidi": ("",), "bidi": ("", "_b")}


def scan_routes(xs: torch.Tensor, dts: torch.Tensor, Bs: torch.Tensor, Cs: torch.Tensor, A: torch.Tensor,
                D: torch.Tensor | None, dt_bias: torch.Tensor | None, chunk_size: int, backend: str) -> torch.Tensor:
    """The K routes of an ordering as one SSD scan over K * heads heads.

    xs: (b, K, heads, headdim, L); dts: (b, K, heads, L); Bs, Cs: (b, K, ngroups, dstate, L);
    A, dt_bias: (K * heads,) and D: (K * heads,) or (K * heads, headdim), route-major.
    Returns y (b, K, heads, headdim, L).  dt goes through softplus(dt + dt_bias), as in every Mamba-2.
    """
    b, k, heads, headdim, length = xs.shape
    groups, dstate = Bs.shape[2:4]
    y = ssd_scan(xs.permute(0, 4, 1, 2, 3).reshape(b, length, k * heads, headdim),
                 dts.permute(0, 3, 1, 2).reshape(b, length, k * heads), A,
                 Bs.permute(0, 4, 1, 2, 3).reshape(b, length, k * groups, dstate),
                 Cs.permute(0, 4, 1, 2, 3).reshape(b, length, k * groups, dstate),
                 chunk_size, D=D, dt_bias=dt_bias, dt_softplus=True, backend=backend)
    return y.view(b, length, k, heads, headdim).permute(0, 2, 3, 4, 1)


def inverse_softplus_dt(n: int, dt_min: float = 1e-3, dt_max: float = 0.1, dt_init_floor: float = 1e-4,
                        device=None) -> torch.Tensor:
    """Mamba's dt bias init: softplus^-1 of dt drawn log-uniformly in [dt_min, dt_max], so that the
    initial step sizes span that range."""
    dt = torch.exp(torch.rand(n, device=device) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))


class GatedRMSNorm(nn.Module):
    """mamba_ssm's RMSNormGated with norm_before_gate=False: rmsnorm(x * silu(z)) * weight, normalised
    over groups of `group_size` channels, in fp32 (cast back to x's dtype)."""

    def __init__(self, dim: int, group_size: int | None = None, eps: float = 1e-5):
        super().__init__()
        self.group_size = group_size or dim
        if dim % self.group_size:
            raise ValueError(f"GatedRMSNorm: group_size={group_size} does not divide dim={dim}")
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gated = x.float() * F.silu(z.float())
        grouped = gated.unflatten(-1, (-1, self.group_size))
        normed = F.rms_norm(grouped, (self.group_size,), eps=self.eps).flatten(-2)
        return (normed * self.weight.float()).to(x.dtype)


class SSDMixer(nn.Module):
    """(B, L, dim) -> (B, L, dim) Mamba-2 mixer; `bidirectional=True` adds the backward route (Vim).

    Args:
        dim: model width.  d_state: SSM state size N.  d_conv: causal conv taps.  expand: d_inner / dim.
        headdim: channels per head (heads = d_inner / headdim).  ngroups: B/C groups per route.
        A_init_range: A = -U(A_init_range) per head.  dt_min, dt_max, dt_init_floor: dt bias init.
        chunk_size: the SSD chunk length.  conv_bias, bias: biases of conv1d and of in_proj/out_proj.
        bidirectional: also scan the reversed sequence ("bidi" ordering).
        if_divide_out: average instead of sum the two routes.  norm_eps: the gated RMSNorm's eps.
        scan_backend: `ssd_scan` backend; cross_scan_backend: that of the orderings.
    """

    def __init__(self, dim: int, d_state: int = 64, d_conv: int = 4, expand: float = 2, headdim: int = 64,
                 ngroups: int = 1, A_init_range: tuple[float, float] = (1, 16), dt_min: float = 1e-3,
                 dt_max: float = 0.1, dt_init_floor: float = 1e-4, chunk_size: int = 64, conv_bias: bool = True,
                 bias: bool = False, bidirectional: bool = False, if_divide_out: bool = False,
                 norm_eps: float = 1e-5, scan_backend: str = "auto", cross_scan_backend: str = "auto"):
        super().__init__()
        self.dim = dim
        self.d_inner = d_inner = int(expand * dim)
        if d_inner % headdim:
            raise ValueError(f"SSDMixer: headdim={headdim} does not divide d_inner={d_inner} (expand * dim)")
        self.headdim, self.nheads = headdim, d_inner // headdim
        if self.nheads % ngroups:
            raise ValueError(f"SSDMixer: ngroups={ngroups} does not divide the {self.nheads} heads")
        if not 0 < A_init_range[0] <= A_init_range[1]:
            raise ValueError(f"SSDMixer: A_init_range={A_init_range}, expected 0 < low <= high")
        self.d_state, self.ngroups, self.d_conv, self.chunk_size = d_state, ngroups, d_conv, chunk_size
        self.ordering = "bidi" if bidirectional else "unidi"
        self.if_divide_out = if_divide_out
        self.scan_backend, self.cross_scan_backend = scan_backend, cross_scan_backend
        self.conv_dim = d_inner + 2 * ngroups * d_state

        # order of the projection: [z, x, B, C, dt] (mamba_ssm's Mamba2)
        self.in_proj = nn.Linear(dim, 2 * d_inner + 2 * ngroups * d_state + self.nheads, bias=bias)
        for suffix in _ROUTE_SUFFIXES[self.ordering]:
            self.add_module("conv1d" + suffix, nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim,
                                                         padding=d_conv - 1, bias=conv_bias))
            dt_bias = nn.Parameter(inverse_softplus_dt(self.nheads, dt_min, dt_max, dt_init_floor))
            A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(*A_init_range)))
            D = nn.Parameter(torch.ones(self.nheads))
            for p in (dt_bias, A_log, D):
                p._no_weight_decay = True
            self.register_parameter("dt_bias" + suffix, dt_bias)
            self.register_parameter(f"A{suffix}_log", A_log)
            self.register_parameter("D" + suffix, D)
        self.norm = GatedRMSNorm(d_inner, group_size=d_inner // ngroups, eps=norm_eps)
        self.out_proj = nn.Linear(d_inner, dim, bias=bias)

    def _per_route(self, name: str) -> list[torch.Tensor]:
        fmt = {"A_log": "A{}_log"}.get(name, name + "{}")
        return [getattr(self, fmt.format(s)) for s in _ROUTE_SUFFIXES[self.ordering]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"SSDMixer: x has shape {tuple(x.shape)}, expected (B, L, dim={self.dim})")
        batch, length, _ = x.shape
        z, xbc_dt = self.in_proj(x).split([self.d_inner, self.conv_dim + self.nheads], dim=-1)
        # every route sees the sequence in its own order, xBC and dt alike
        routes = cross_scan(xbc_dt.transpose(1, 2), self.ordering, backend=self.cross_scan_backend)
        k = routes.shape[1]
        xbc, dts = routes.split([self.conv_dim, self.nheads], dim=2)
        convs = self._per_route("conv1d")
        # the routes' causal convs as one grouped conv over their stacked channels
        bias = torch.cat([c.bias for c in convs]) if convs[0].bias is not None else None
        xbc = F.conv1d(xbc.reshape(batch, k * self.conv_dim, length), torch.cat([c.weight for c in convs]), bias,
                       padding=self.d_conv - 1, groups=k * self.conv_dim)[..., :length]
        xs, Bs, Cs = F.silu(xbc).view(batch, k, self.conv_dim, length).split(
            [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=2)
        grouped = (batch, k, self.ngroups, self.d_state, length)
        y = scan_routes(xs.reshape(batch, k, self.nheads, self.headdim, length), dts, Bs.reshape(grouped),
                        Cs.reshape(grouped), -torch.exp(torch.cat(self._per_route("A_log")).float()),
                        torch.cat(self._per_route("D")).float(), torch.cat(self._per_route("dt_bias")).float(),
                        self.chunk_size, self.scan_backend)
        y = cross_merge(y.reshape(batch, k, self.d_inner, length), self.ordering, backend=self.cross_scan_backend)
        if k > 1 and self.if_divide_out:
            y = y / k
        return self.out_proj(self.norm(y.transpose(1, 2), z))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, d_inner={self.d_inner}, heads={self.nheads}x{self.headdim}, d_state={self.d_state}, "
                f"ngroups={self.ngroups}, ordering={self.ordering!r}, chunk_size={self.chunk_size}, "
                f"scan_backend={self.scan_backend!r}")


class SSD2D(nn.Module):
    """(B, C, H, W) -> (B, C, H, W): VMamba's Mamba-2 mixer (official forward type "m0_noz").

    d_model: C; d_inner = ssm_ratio * C; d_state: N; dt_rank ("auto" = ceil(C / 16)): the heads per
    route, of headdim d_inner / dt_rank; d_conv: depthwise conv kernel (< 2: none); ordering: a scan
    ordering of `vision_mamba.kernels` ("cross2d"); chunk_size: the SSD chunk length; scan_backend,
    cross_scan_backend: the backends of ssd_scan and of the orderings.  Init as the official "v2":
    A = -1, D = 1, dt_bias ~ U(0, 0.1).
    """

    def __init__(self, d_model: int, d_state: int = 64, ssm_ratio: float = 1.0, dt_rank: int | str = "auto",
                 act_layer: type[nn.Module] = nn.GELU, d_conv: int = 3, conv_bias: bool = False, bias: bool = False,
                 chunk_size: int = 64, ordering: str = "cross2d", scan_backend: str = "auto",
                 cross_scan_backend: str = "auto"):
        super().__init__()
        if ordering not in ROUTES:
            raise ValueError(f"SSD2D: ordering={ordering!r}, expected one of {sorted(ROUTES)}")
        self.ordering, self.chunk_size = ordering, chunk_size
        self.scan_backend, self.cross_scan_backend = scan_backend, cross_scan_backend
        self.k_group = k = ROUTES[ordering]
        self.d_state = n = int(d_state)
        self.d_inner = e = int(ssm_ratio * d_model)
        self.dt_rank = r = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        if e % r:
            raise ValueError(f"SSD2D: dt_rank={r} (the heads per route) does not divide d_inner={e}")
        self.headdim = e // r

        self.in_proj = Linear2d(d_model, e, bias=bias)
        self.conv2d = (nn.Conv2d(e, e, d_conv, padding=(d_conv - 1) // 2, groups=e, bias=conv_bias)
                       if d_conv > 1 else nn.Identity())
        self.act = act_layer()
        # per route: x -> (dt, B, C), nn.Linear's default init as the official per-route layers get
        self.x_proj_weight = nn.Parameter(torch.empty(k, r + 2 * n, e).uniform_(-e ** -0.5, e ** -0.5))
        self.A_logs = nn.Parameter(torch.zeros(k, r))
        self.Ds = nn.Parameter(torch.ones(k, r, self.headdim))
        self.dt_projs_bias = nn.Parameter(0.1 * torch.rand(k, r))
        self.A_logs._no_weight_decay = True
        self.Ds._no_weight_decay = True
        self.out_norm = LayerNorm2d(e, eps=LN_EPS)
        self.out_proj = Linear2d(e, d_model, bias=bias)

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """(B, E, H, W) -> (B, E, H, W): every route of the ordering in one SSD scan."""
        b, e, h, w = x.shape
        k, r, n, length = self.k_group, self.dt_rank, self.d_state, h * w
        xs = cross_scan(x, self.ordering, backend=self.cross_scan_backend)             # (b, k, e, L)
        x_dbl = F.conv1d(xs.reshape(b, k * e, length), self.x_proj_weight.reshape(k * (r + 2 * n), e, 1), groups=k)
        dts, Bs, Cs = torch.split(x_dbl.view(b, k, r + 2 * n, length), [r, n, n], dim=2)
        y = scan_routes(xs.view(b, k, r, self.headdim, length), dts, Bs.unsqueeze(2), Cs.unsqueeze(2),
                        -torch.exp(self.A_logs.float()).view(k * r), self.Ds.float().view(k * r, self.headdim),
                        self.dt_projs_bias.float().view(k * r), self.chunk_size, self.scan_backend)
        return cross_merge(y.reshape(b, k, e, length), self.ordering, h, w,
                           backend=self.cross_scan_backend).view(b, e, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"SSD2D: x has shape {tuple(x.shape)}, expected (B, C, H, W)")
        x = self.act(self.conv2d(self.in_proj(x)))
        return self.out_proj(self.out_norm(self.scan(x)))
