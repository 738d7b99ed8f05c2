"""Translate one image from Python with a trained generator: G (X -> Y) or F (Y -> X), Sec. 3.

    python docs/example.py runs/horse2zebra/latest.pt horse.jpg zebra.png      # G, horse to zebra
    python docs/example.py runs/horse2zebra/latest.pt zebra.jpg horse.png y2x  # F, zebra to horse

The checkpoint may also be a generator file released with the authors' code (horse2zebra.pth).
"""
import pathlib
import sys

from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # where translate.py is
import translate  # noqa: E402 (after the path line above)

checkpoint, source, target = sys.argv[1:4]
direction = sys.argv[4] if len(sys.argv) > 4 else "x2y"

generator = translate.load_generator(checkpoint, direction)  # G, or F for "y2x"; device="cuda"
translate.translate_image(generator, Image.open(source)).save(target)  # the same size
print(f"{source} -> {target}")
