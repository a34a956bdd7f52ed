# UperNet + the SSM-free twin of VMamba-T (Gated-CNN mixers in place of SS2D, same stages and widths) on
# ADE20K: the VMamba-T recipe unchanged, for a like-for-like comparison.
_base_ = ['./upernet_vmamba_tiny_512x512_ade20k.py']
model = dict(backbone=dict(name='vmamba_tiny_gcnn'))
