"""MONAI dictionary transforms for training, validation and inference.

MONAI's transforms are used rather than hand-written ones because they carry the image's affine
through every step (MetaTensor) and record each spatial change, which `Invertd` later undoes to write
predictions in the input's own voxel grid.
"""
from __future__ import annotations

from typing import Optional, Sequence

from monai import transforms as T

# nibabel is MONAI's reader here (not ITK): nibabel is what the dataset checks and the NIfTI writer use,
# so the array axes and affine are the same ones everywhere
READER = "NibabelReader"


def _load_and_resample(keys: Sequence[str], spacing: Optional[Sequence[float]]) -> list:
    modes = ["bilinear" if k == "image" else "nearest" for k in keys]
    steps = [T.LoadImaged(keys, reader=READER, image_only=True),
             T.EnsureChannelFirstd(keys),
             # a common orientation so that flips and patches mean the same axes in every case
             # the labels are NIfTI's world axes (L->R, P->A, I->S), given so as not to depend on MONAI's
             # changing default
             T.Orientationd(keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))]
    if spacing:
        steps.append(T.Spacingd(keys, pixdim=tuple(spacing), mode=modes))
    return steps


def _normalise(normalization: str, ct_window: Sequence[float]) -> list:
    if normalization == "ct":  # Hounsfield units mean the same everywhere: a fixed clipped window
        a_min, a_max = ct_window
        return [T.ScaleIntensityRanged("image", a_min=a_min, a_max=a_max, b_min=0.0, b_max=1.0, clip=True)]
    if normalization == "mr":  # arbitrary MR units: z-score per channel over the body (non-zero voxels)
        return [T.NormalizeIntensityd("image", nonzero=True, channel_wise=True)]
    raise ValueError(f"normalization={normalization!r}, expected 'ct' or 'mr'")


def train_transforms(patch_size: Sequence[int], spacing: Optional[Sequence[float]] = None,
                     normalization: str = "mr", ct_window: Sequence[float] = (-1000.0, 1000.0),
                     pos_neg: Sequence[float] = (2.0, 1.0), num_samples: int = 2, flip_prob: float = 0.5,
                     intensity_scale_prob: float = 0.15) -> T.Compose:
    """Load, resample, normalise, pad to the patch, then `num_samples` patches per case centred on
    foreground with probability pos / (pos + neg) (nnU-Net-style foreground oversampling), randomly
    flipped and intensity-scaled.  A 2-D `patch_size` (H, W) takes (H, W, 1) blocks of the volumes and
    drops the last axis: axial slices for a 2-D network."""
    keys = ["image", "label"]
    pos, neg = pos_neg
    slices = len(patch_size) == 2
    roi = (*patch_size, 1) if slices else tuple(patch_size)
    return T.Compose([
        *_load_and_resample(keys, spacing),
        *_normalise(normalization, ct_window),
        T.SpatialPadd(keys, spatial_size=roi),
        T.RandCropByPosNegLabeld(keys, label_key="label", spatial_size=roi, pos=pos, neg=neg,
                                 num_samples=num_samples, image_key="image", image_threshold=0),
        *([T.SqueezeDimd(keys, dim=-1)] if slices else []),
        *[T.RandFlipd(keys, prob=flip_prob, spatial_axis=axis) for axis in range(len(patch_size))],
        T.RandScaleIntensityd("image", factors=0.1, prob=intensity_scale_prob),
    ])


def val_transforms(spacing: Optional[Sequence[float]] = None, normalization: str = "mr",
                   ct_window: Sequence[float] = (-1000.0, 1000.0), with_label: bool = True) -> T.Compose:
    """Whole volumes, no random crops (sliding-window inference covers them)."""
    keys = ["image", "label"] if with_label else ["image"]
    return T.Compose([*_load_and_resample(keys, spacing), *_normalise(normalization, ct_window)])
