#!/usr/bin/env python3
"""Evaluate a classifier checkpoint: python3 tools/eval.py --config <recipe>.yaml --checkpoint <run>/checkpoints/step-..."""
import sys

from vision_mamba.training.cli import eval_main

if __name__ == "__main__":
    try:
        eval_main()
    except KeyboardInterrupt:
        sys.exit(130)
