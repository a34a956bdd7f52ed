#!/usr/bin/env python3
"""Write the nuclei detection demo's COCO tiles: python3 tools/make_demo_nuclei.py --output data/nuclei_demo

Needs stardist's sample image (python3 -m pip install --no-deps stardist) and the [det] extra."""
import argparse
import json
import sys

from vision_mamba.tasks.nuclei_demo import make_nuclei_tiles


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output", default="data/nuclei_demo", help="folder for images/, train.json, val.json")
    p.add_argument("--tile", type=int, default=128, help="tile side (pixels)")
    p.add_argument("--stride", type=int, default=None, help="step between tiles (default: --tile, no overlap)")
    p.add_argument("--val-columns", type=int, default=1, help="right-most tile columns held out as val.json")
    p.add_argument("--min-area", type=int, default=16, help="smallest part of a nucleus (pixels) annotated in a tile")
    args = p.parse_args(argv)
    try:
        summary = make_nuclei_tiles(args.output, args.tile, args.stride, args.val_columns, args.min_area)
    except FileNotFoundError as e:
        sys.exit(f"make_demo_nuclei: {e}")
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
