#!/usr/bin/env python3
"""Train a classifier: python3 tools/train.py --config configs/cls/<recipe>.yaml [--flag value ...]

Many processes: torchrun --nproc_per_node N tools/train.py --config ... (NCCL on GPUs, gloo on CPU)."""
import sys

from vision_mamba.training.cli import train_main

if __name__ == "__main__":
    try:
        train_main()
    except KeyboardInterrupt:
        sys.exit(130)
