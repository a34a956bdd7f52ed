#!/usr/bin/env python3
"""Print the model-zoo table (params, FLOPs, published top-1) as markdown and optionally JSON.

    python3 tools/model_table.py                       # every family
    python3 tools/model_table.py --family Vim VMamba --json results/models.json
"""
from __future__ import annotations

import argparse
import json

from vision_mamba.bench import models as zoo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", nargs="+", help="families to list (default: all)")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    rows = zoo.zoo_table(args.img_size, args.family)
    print(zoo.to_markdown(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
