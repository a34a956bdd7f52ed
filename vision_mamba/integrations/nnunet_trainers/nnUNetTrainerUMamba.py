"""nnU-Net v2 trainers for U-Mamba Bot / Enc (found by nnunetv2 through `nnUNet_extTrainer`, see
vision_mamba.integrations.nnunet).  nnU-Net imports this file as a top-level module, so it imports the
library by absolute name."""
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import nn
from torch._dynamo import OptimizedModule

from vision_mamba.integrations.nnunet import build_network


class nnUNetTrainerUMambaBot(nnUNetTrainer):
    """nnU-Net's default training with a U-Mamba Bot built from the plans."""

    network_kind = "bot"

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
        # a classmethod where the base has a staticmethod: nnU-Net calls it on the class, and the subclass
        # picks the network; the configuration manager holds the plans' resolved configuration dict
        return build_network(configuration_manager.configuration, num_input_channels, num_output_channels,
                             kind=cls.network_kind, deep_supervision=enable_deep_supervision)

    def set_deep_supervision_enabled(self, enabled: bool):
        # the base class sets `decoder.deep_supervision` of its own U-Nets; ours keeps the switch on the network
        net = self.network.module if self.is_ddp else self.network
        if isinstance(net, OptimizedModule):
            net = net._orig_mod
        net.deep_supervision = enabled


class nnUNetTrainerUMambaEnc(nnUNetTrainerUMambaBot):
    """nnU-Net's default training with a U-Mamba Enc built from the plans."""

    network_kind = "enc"
