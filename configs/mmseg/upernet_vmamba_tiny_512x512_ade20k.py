# UperNet + VMamba-T (vmamba_tiny_s1l8) on ADE20K (150 classes, 512 x 512 crops): the official VMamba
# recipe -- MzeroMiko/VMamba segmentation/configs/vssm1/upernet_vssm_4xb4-160k_ade20k-512x512_tiny.py,
# which is mmseg's Swin-T UperNet config with the backbone swapped: AdamW lr 6e-5, weight decay 0.01
# (none on norms), 1500 linear warm-up iterations then poly decay to 0, 160k iterations of batch 16,
# drop path 0.2.
#
#   python3 $(python3 -c "import mmseg, os; print(os.path.dirname(mmseg.__file__))")/.mim/tools/train.py \
#       configs/mmseg/upernet_vmamba_tiny_512x512_ade20k.py --cfg-options model.backbone.pretrained=vmamba_t.pth
_base_ = ['mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py']
custom_imports = dict(imports=['vision_mamba.integrations.mmseg'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='VisionMambaBackbone',
        name='vmamba_tiny_s1l8',
        drop_path_rate=0.2,
        pretrained=False),   # or the path of an ImageNet checkpoint (official release or ours)
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
