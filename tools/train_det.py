#!/usr/bin/env python3
"""Train a detector: python3 tools/train_det.py --config configs/det/<recipe>.yaml [--flag value ...]"""
import sys

from vision_mamba.tasks.det_cli import train_main

if __name__ == "__main__":
    try:
        train_main()
    except KeyboardInterrupt:
        sys.exit(130)
