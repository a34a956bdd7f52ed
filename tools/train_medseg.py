#!/usr/bin/env python3
"""Train U-Mamba on a medical segmentation dataset:
python3 tools/train_medseg.py --config configs/medseg/<recipe>.yaml --data <MSD / nnU-Net raw dir> [--flag value ...]"""
import sys

from vision_mamba.medseg.cli import train_main

if __name__ == "__main__":
    try:
        train_main()
    except KeyboardInterrupt:
        sys.exit(130)
