#!/usr/bin/env python3
"""COCO mAP of a detection checkpoint:
python3 tools/eval_det.py --config configs/det/<recipe>.yaml --checkpoint <run>/checkpoints/step-..."""
import sys

from vision_mamba.tasks.det_cli import eval_main

if __name__ == "__main__":
    try:
        eval_main()
    except KeyboardInterrupt:
        sys.exit(130)
