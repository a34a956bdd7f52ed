# Smoke demo, not a benchmark: UperNet + a small Vim (Vim-T shrunk to width 96, depth 4, 8 x 8 patches,
# random init) learns nucleus vs background on stardist's one real nuclei image, on the CPU, with mmseg's
# own training loop.  Train on random 128 x 128 crops of the image's top band, validate on its bottom band
# (vision_mamba/integrations/mmseg_demo.py says how the split keeps them apart).
#
#   python3 tools/make_demo_nuclei_seg.py --output runs/demo_nuclei_seg/data
#   python3 $(python3 -c "import mmseg, os; print(os.path.dirname(mmseg.__file__))")/.mim/tools/train.py \
#       configs/mmseg/demo_nuclei_vim_tiny.py
_base_ = ['mmseg::_base_/default_runtime.py']
custom_imports = dict(imports=['vision_mamba.integrations.mmseg'], allow_failed_imports=False)

data_root = 'runs/demo_nuclei_seg/data'
work_dir = 'runs/demo_nuclei_seg'
crop_size = (128, 128)
max_iters = 300
val_interval = 50
norm_cfg = dict(type='BN', requires_grad=True)   # one process: no SyncBN

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=crop_size),
    backbone=dict(
        type='VisionMambaBackbone', name='vim_tiny_patch16_224', img_size=128, patch_size=8,
        embed_dim=96, depth=4),
    # the simple pyramid over stride-8 tokens: one transposed conv (halving the width), identity, pools
    decode_head=dict(
        type='UPerHead', in_channels=[48, 96, 96, 96], in_index=[0, 1, 2, 3], pool_scales=(1, 2, 3, 6),
        channels=64, dropout_ratio=0.1, num_classes=2, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead', in_channels=96, in_index=2, channels=32, num_convs=1, concat_input=False,
        dropout_ratio=0.1, num_classes=2, norm_cfg=norm_cfg, align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

dataset = dict(
    type='BaseSegDataset', data_root=data_root, img_suffix='.png', seg_map_suffix='.png',
    metainfo=dict(classes=('background', 'nucleus'), palette=[[0, 0, 0], [255, 64, 64]]))
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        **dataset, data_prefix=dict(img_path='img_dir/train', seg_map_path='ann_dir/train'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='RandomCrop', crop_size=crop_size),
            dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
            dict(type='PackSegInputs'),
        ]))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **dataset, data_prefix=dict(img_path='img_dir/val', seg_map_path='ann_dir/val'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs'),
        ]))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                                                         weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=20, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
