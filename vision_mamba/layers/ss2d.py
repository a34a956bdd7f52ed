"""SS2D, VMamba's 2-D selective-scan token mixer, in the v2 recipe (official forward type "v05_noz").

Channel-first throughout ((B, C, H, W) in and out), as the official 'ln2d' models run it:
in_proj -> depthwise conv -> act -> K-route scan -> out_norm -> out_proj, with no z gate.
The K routes of the ordering (4 for "cross2d") run as ONE selective scan over K * d_inner channels
whose B/C are grouped by route (G = K), so route k's channels read route k's B and C.

Parameter names and shapes are those of the official SS2D (MzeroMiko/VMamba, classification/models/
vmamba.py), so its checkpoints load unchanged: in_proj.weight, conv2d.weight[/bias], x_proj_weight
(K, R + 2N, E), dt_projs_weight (K, E, R), dt_projs_bias (K, E), A_logs (K * E, N), Ds (K * E),
out_norm.weight/bias, out_proj.weight.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import LayerNorm2d

from vision_mamba.kernels import selective_scan
from vision_mamba.kernels import ROUTES, cross_merge, cross_scan

# the official models use torch.nn.LayerNorm's default eps, not timm's LayerNorm2d default (1e-6)
LN_EPS = 1e-5


class Linear2d(nn.Linear):
    """A linear layer over the channels of a (B, C, H, W) map (a 1x1 conv).

    The weight keeps nn.Linear's (out, in) shape, as the official Linear2d does, so checkpoints
    hold the same shapes whichever layout the model runs in.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


def dt_projection_init(weight: torch.Tensor, bias: torch.Tensor, dt_rank: int, dt_scale: float = 1.0,
                       dt_init: str = "random", dt_min: float = 1e-3, dt_max: float = 0.1,
                       dt_init_floor: float = 1e-4) -> None:
    """Mamba's dt projection init, in place, for any leading (route) dims.

    Weight: uniform (or constant) at dt_rank**-0.5 * dt_scale, preserving variance.
    Bias: softplus^-1 of dt drawn log-uniformly in [dt_min, dt_max], so softplus(bias) starts there.
    """
    std = dt_rank ** -0.5 * dt_scale
    with torch.no_grad():
        if dt_init == "constant":
            weight.fill_(std)
        elif dt_init == "random":
            weight.uniform_(-std, std)
        else:
            raise ValueError(f"dt_init={dt_init!r}, expected 'random' or 'constant'")
        dt = torch.exp(torch.rand_like(bias) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        bias.copy_(dt + torch.log(-torch.expm1(-dt)))


def route_projection(x: torch.Tensor, weight: torch.Tensor, dense: bool = False) -> torch.Tensor:
    """Per-route linear maps: (B, K * I, L) -> (B, K * O, L) with weight (K, O, I), route k's outputs from
    route k's inputs only.

    dense=False: one grouped 1x1 conv.  dense=True: one matmul with the block-diagonal (K * O, K * I)
    weight -- K times the multiply-adds, but no grouped conv.  On CUDA, cuDNN runs the grouped conv in NHWC
    and converts its input and output on every call (13.3 ms of the 78.7 ms of GPU time of a compiled
    VMamba-T training step, batch 128, H100, 2026-12-07); the matmul has none.
    """
    if weight.dim() != 3 or x.dim() != 3 or x.shape[1] != weight.shape[0] * weight.shape[2]:
        raise ValueError(f"route_projection: x has shape {tuple(x.shape)} and weight {tuple(weight.shape)}, "
                         f"expected x (B, K * I, L) with weight (K, O, I)")
    k, o, i = weight.shape
    if dense:
        return torch.matmul(torch.block_diag(*weight.unbind(0)), x)
    return F.conv1d(x, weight.reshape(k * o, i, 1), groups=k)


class SS2D(nn.Module):
    """(B, C, H, W) -> (B, C, H, W).

    d_model: C; d_inner = ssm_ratio * C; d_state: N; dt_rank "auto" = ceil(C / 16).
    d_conv: depthwise conv kernel (< 2 means no conv). ordering: a scan ordering of
    `vision_mamba.kernels.orderings` ("cross2d" for VMamba). scan_backend: the selective_scan backend;
    cross_scan_backend: the cross_scan / cross_merge backend.
    """

    def __init__(self, d_model: int, d_state: int = 1, ssm_ratio: float = 2.0, dt_rank: int | str = "auto",
                 act_layer: type[nn.Module] = nn.SiLU, d_conv: int = 3, conv_bias: bool = False,
                 bias: bool = False, dt_min: float = 1e-3, dt_max: float = 0.1, dt_init: str = "random",
                 dt_scale: float = 1.0, dt_init_floor: float = 1e-4, ordering: str = "cross2d",
                 scan_backend: str = "auto", cross_scan_backend: str = "auto"):
        super().__init__()
        if ordering not in ROUTES:
            raise ValueError(f"SS2D: ordering={ordering!r}, expected one of {sorted(ROUTES)}")
        self.ordering = ordering
        self.scan_backend = scan_backend
        self.cross_scan_backend = cross_scan_backend
        self.k_group = k = ROUTES[ordering]
        self.d_state = n = int(d_state)
        self.d_inner = e = int(ssm_ratio * d_model)
        self.dt_rank = r = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)

        self.in_proj = Linear2d(d_model, e, bias=bias)
        self.conv2d = (nn.Conv2d(e, e, d_conv, padding=(d_conv - 1) // 2, groups=e, bias=conv_bias)
                       if d_conv > 1 else nn.Identity())
        self.act = act_layer()

        # per route: x -> (dt_low_rank, B, C); dt_low_rank -> dt
        self.x_proj_weight = nn.Parameter(torch.empty(k, r + 2 * n, e))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, e, r))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, e))
        # S4D-real A = -(1..N) per channel, and the D skip, for every route's channels; kept in fp32
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(k * e, 1))
        self.Ds = nn.Parameter(torch.ones(k * e))
        self.A_logs._no_weight_decay = True
        self.Ds._no_weight_decay = True

        self.out_norm = LayerNorm2d(e, eps=LN_EPS)
        self.out_proj = Linear2d(e, d_model, bias=bias)

        # nn.Linear's default init for x_proj, as the official per-route nn.Linear layers get
        bound = e ** -0.5
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        dt_projection_init(self.dt_projs_weight, self.dt_projs_bias, r, dt_scale, dt_init, dt_min, dt_max,
                           dt_init_floor)

    def scan(self, x: torch.Tensor) -> torch.Tensor:
        """(B, E, H, W) -> (B, E, H, W): every route of the ordering in one grouped selective scan."""
        b, e, h, w = x.shape
        k, r, n, length = self.k_group, self.dt_rank, self.d_state, h * w
        xs = cross_scan(x, self.ordering, backend=self.cross_scan_backend).reshape(b, k * e, length)
        # Per-route projections, one launch for all K routes.  Block-diagonal matmuls when training on CUDA:
        # with inductor's layout optimisation off, the compiled VMamba-T training step went from 81.3 to
        # 64.7 ms (tools/benchmark.py, batch 128, H100, 2026-12-07; docs/benchmarks.md, session 10).
        # Grouped convs elsewhere: inference was not re-measured with the matmuls, and the FLOP count
        # (meta device, no grad) stays the architecture's.
        dense = xs.is_cuda and torch.is_grad_enabled()
        x_dbl = route_projection(xs, self.x_proj_weight, dense)
        dts, Bs, Cs = torch.split(x_dbl.view(b, k, r + 2 * n, length), [r, n, n], dim=2)
        dts = route_projection(dts.reshape(b, k * r, length), self.dt_projs_weight, dense)
        ys = selective_scan(
            xs, dts, -torch.exp(self.A_logs.float()), Bs.contiguous(), Cs.contiguous(), self.Ds.float(),
            delta_bias=self.dt_projs_bias.reshape(-1).float(), delta_softplus=True, backend=self.scan_backend,
        )
        y = cross_merge(ys.view(b, k, e, length), self.ordering, h, w, backend=self.cross_scan_backend)
        return y.view(b, e, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"SS2D: x has shape {tuple(x.shape)}, expected (B, C, H, W)")
        x = self.act(self.conv2d(self.in_proj(x)))
        return self.out_proj(self.out_norm(self.scan(x)))
