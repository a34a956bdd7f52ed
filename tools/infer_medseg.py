#!/usr/bin/env python3
"""Segment NIfTI volumes: python3 tools/infer_medseg.py --config configs/medseg/<recipe>.yaml
--checkpoint <run>/checkpoints/step-XXXXXXXX --input <file.nii.gz or folder> --output <folder> [--label <file.nii.gz>]"""
import sys

from vision_mamba.medseg.cli import infer_main

if __name__ == "__main__":
    try:
        infer_main()
    except KeyboardInterrupt:
        sys.exit(130)
