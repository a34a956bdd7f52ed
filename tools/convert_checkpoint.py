#!/usr/bin/env python3
"""Convert an official Vim / VMamba release file into a safetensors file of our model's weights.

    python3 tools/convert_checkpoint.py --model vim_small_patch16_224 --input vim_s_midclstok_80p5acc.pth \\
        --output vim_small_patch16_224.safetensors

The file is read through the family's checkpoint_filter_fn (vision_mamba.models.weights.load_pretrained:
torch.load with weights_only=True, no pickled code runs; --sha256 checks the file first) and written
atomically; the output loads with timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=output)).
"""
from __future__ import annotations

import argparse

from vision_mamba.models.convert import convert_checkpoint


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="registered model name, e.g. vmamba_tiny_s1l8")
    p.add_argument("--input", required=True, help="official .pth / .safetensors file")
    p.add_argument("--output", required=True, help="where to write the .safetensors file")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--sha256", default=None, help="the digest the input must have (published with the release)")
    args = p.parse_args()
    n = convert_checkpoint(args.model, args.input, args.output, num_classes=args.num_classes, sha256=args.sha256)
    print(f"wrote {args.output}: {n} tensors of {args.model}")


if __name__ == "__main__":
    main()
