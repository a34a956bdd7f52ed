# UperNet + the SSM-free twin of Vim-S (Gated-CNN mixers in place of the bidirectional Mamba mixers, same
# depth and width) on ADE20K: the Vim-S recipe unchanged, for a like-for-like comparison.
_base_ = ['./upernet_vim_small_512x512_ade20k.py']
model = dict(backbone=dict(name='vim_small_gcnn_patch16_224'))
