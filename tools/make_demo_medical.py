#!/usr/bin/env python3
"""Write the offline 3-D demo data set (Colin27 T1 + AAL from Debian's mricron-data, 4 classes, left
hemisphere for training, right for validation) in MSD layout:
python3 tools/make_demo_medical.py --output data/colin27_demo"""
import argparse
import json
import logging

from vision_mamba.medseg.demo import TEMPLATES, make_demo

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="data/colin27_demo", help="dataset directory to write")
    p.add_argument("--templates", default=str(TEMPLATES), help="folder holding ch2.nii.gz and aal.nii.gz")
    p.add_argument("--spacing", type=float, default=1.5, help="isotropic voxel size of the output (mm)")
    p.add_argument("--gap-mm", type=float, default=6.0, help="midline band left out of both halves (mm)")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(make_demo(a.output, a.templates, a.spacing, a.gap_mm), indent=1))
