#!/usr/bin/env python3
"""Write the offline data set of the mmseg smoke demo (stardist's nuclei image, nucleus vs background,
top band for training, bottom band for validation) in mmseg's layout:
python3 tools/make_demo_nuclei_seg.py --output runs/demo_nuclei_seg/data"""
import argparse
import json

from vision_mamba.integrations.mmseg_demo import write_nuclei_seg_dataset

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="runs/demo_nuclei_seg/data", help="dataset directory to write")
    p.add_argument("--val-rows", type=int, default=128, help="rows at the bottom of the image kept for validation")
    p.add_argument("--gap", type=int, default=16, help="rows between the two bands left out of both")
    a = p.parse_args()
    print(json.dumps(write_nuclei_seg_dataset(a.output, a.val_rows, a.gap), indent=1))
