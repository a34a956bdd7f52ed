#!/usr/bin/env python3
"""Export a model to ONNX or torch.export and check it against PyTorch:
python3 tools/export.py --model vim_small_patch16_224 --format onnx --img-size 224"""
import sys

from vision_mamba.export import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"export: {e}")
