"""The twins' token mixer is MambaOut's: timm's GatedConvBlock minus its norm and residual."""
import pytest
import torch
from timm.models.mambaout import GatedConvBlock

from vision_mamba.layers.gated_cnn import GatedCNNMixer


@pytest.mark.parametrize("conv_ratio", [1.0, 0.5])
def test_matches_timm_gated_conv_block(conv_ratio):
    torch.manual_seed(0)
    block = GatedConvBlock(24, conv_ratio=conv_ratio)
    block.norm = torch.nn.Identity()
    mixer = GatedCNNMixer(24, conv_ratio=conv_ratio)
    mixer.load_state_dict({k: v for k, v in block.state_dict().items() if not k.startswith("norm")})
    x = torch.randn(2, 5, 7, 24)
    torch.testing.assert_close(mixer(x) + x, block(x))


def test_rejects_channel_first_input():
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        GatedCNNMixer(8)(torch.randn(2, 8, 4))
