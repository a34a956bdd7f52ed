# UperNet + Vim-S on ADE20K (150 classes, 512 x 512 crops): the official Vim recipe, written for
# mmseg 1.x -- hustvl/Vim seg/configs/vim/upernet/upernet_vim_small_24_512_slide_60k.py with the overrides
# of its release script seg/scripts/ft_vim_small_upernet.sh (layer decay 0.95): AdamW lr 1e-4, weight
# decay 0.05, layer-wise lr decay, 1500 linear warm-up iterations then poly decay to 0, 60k iterations
# of batch 32 (4 GPUs x 8), sliding-window test.  Vim's published number uses 60k iterations, not
# mmseg's usual 160k: change max_iters for the longer schedule.
#
#   python3 $(python3 -c "import mmseg, os; print(os.path.dirname(mmseg.__file__))")/.mim/tools/train.py \
#       configs/mmseg/upernet_vim_small_512x512_ade20k.py --cfg-options model.backbone.pretrained=vim_s.pth
_base_ = [
    'mmseg::_base_/models/upernet_swin.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]
custom_imports = dict(imports=['vision_mamba.integrations.mmseg'], allow_failed_imports=False)

crop_size = (512, 512)
max_iters = 60000
warmup_iters = 1500
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        _delete_=True,
        type='VisionMambaBackbone',
        name='vim_small_patch16_224',
        img_size=512,                     # the checkpoint's position embedding is resampled once, at load
        pyramid_blocks=[5, 11, 17, 23],   # one block per pyramid level, as the official out_indices
        drop_path_rate=0.1,
        pretrained=False),                # or the path of an ImageNet checkpoint (official release or ours)
    # the simple pyramid's declared channels at strides 4, 8, 16, 32 (the transposed convolutions halve them)
    decode_head=dict(in_channels=[96, 192, 384, 384], channels=384, num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='TimmLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters // 10)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters // 10))
train_dataloader = dict(batch_size=8)   # per GPU, on 4 GPUs
auto_scale_lr = dict(enable=False, base_batch_size=32)
