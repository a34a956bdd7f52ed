# UperNet + timm's MambaOut-T (mambaout_tiny) on ADE20K (150 classes, 512 x 512 crops).  MambaOut releases
# no segmentation config: this is the VMamba-T recipe (mmseg's Swin-T UperNet config, drop path 0.2),
# for a like-for-like comparison.  pretrained=True takes timm's ImageNet weights (a download); a local
# file path works as for our models.
_base_ = ['./upernet_vmamba_tiny_512x512_ade20k.py']
model = dict(
    backbone=dict(name='mambaout_tiny'),
    decode_head=dict(in_channels=[96, 192, 384, 576]),
    auxiliary_head=dict(in_channels=384))
