"""Medical image segmentation with U-Mamba on MONAI: dataset reading (MSD / nnU-Net v2 raw layout),
MONAI transforms, a step-based training loop with deep supervision and sliding-window inference that
writes NIfTI predictions in the input's voxel grid."""
from .data import MedicalDataset, read_dataset, split_cases, validate_case

__all__ = ["MedicalDataset", "read_dataset", "split_cases", "validate_case"]
