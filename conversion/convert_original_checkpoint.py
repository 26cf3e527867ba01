"""
Convert an original (detectron2) Video Mask2Former checkpoint into a transformers folder. Same as
`video-mask2former convert`, e.g.:

    python conversion/convert_original_checkpoint.py --preset ytvis_2019_R50 --output-dir video-mask2former-r50-ytvis19
    python conversion/convert_original_checkpoint.py --checkpoint model.pkl --config my.yaml --output-dir out
"""

import sys

from modeling_video_mask2former.cli import main


if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
