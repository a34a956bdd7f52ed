"""nnU-Net v2 trainer classes, imported by nnunetv2 from this folder (nnUNet_extTrainer); see
vision_mamba.integrations.nnunet."""
