"""MambaOut's Gated CNN token mixer, without the norm and residual its block wraps around it.

The SSM-free twin of every SSM backbone swaps its SSM mixer for this one and keeps everything
else (depth, width, norms, MLPs), so the pair isolates what the state-space scan contributes.
timm's `GatedConvBlock` is the same mixer inside MambaOut's own block (norm + residual + layer
scale); its parameter names (fc1, conv, fc2) are kept here.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class GatedCNNMixer(nn.Module):
    """(B, H, W, C) -> (B, H, W, C): fc1 -> (gate, identity, conv) split -> depthwise conv on the
    conv part -> act(gate) * cat(identity, conv) -> fc2.

    hidden = expansion_ratio * dim; conv_ratio of the input width gets the k x k depthwise conv.
    """

    def __init__(self, dim: int, expansion_ratio: float = 8 / 3, kernel_size: int = 7,
                 conv_ratio: float = 1.0, act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        hidden = int(expansion_ratio * dim)
        conv_channels = int(conv_ratio * dim)
        if not 0 < conv_channels <= hidden:
            raise ValueError(f"GatedCNNMixer: conv_ratio={conv_ratio} gives {conv_channels} conv channels, "
                             f"expected 1..hidden={hidden}")
        self.split_indices = (hidden, hidden - conv_channels, conv_channels)
        self.fc1 = nn.Linear(dim, hidden * 2)
        self.act = act_layer()
        self.conv = nn.Conv2d(conv_channels, conv_channels, kernel_size, padding=kernel_size // 2,
                              groups=conv_channels)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"GatedCNNMixer: x has shape {tuple(x.shape)}, expected (B, H, W, C)")
        g, i, c = torch.split(self.fc1(x), self.split_indices, dim=-1)
        c = self.conv(c.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.fc2(self.act(g) * torch.cat((i, c), dim=-1))
