"""Translate one image from Python with a trained generator: G (X -> Y) or F (Y -> X), Sec. 3.
After the Quick start's `python train.py`, on the toy's test images; then after horse2zebra:

    python docs/example.py runs/toy/latest.pt datasets/toy/testA/0000.png y.png      # G, X to Y
    python docs/example.py runs/toy/latest.pt datasets/toy/testB/0000.png x.png y2x  # F, Y to X
    python docs/example.py runs/horse2zebra/latest.pt horse.jpg zebra.png      # G, horse to zebra
    python docs/example.py runs/horse2zebra/latest.pt zebra.jpg horse.png y2x  # F, zebra to horse

The checkpoint may also be a generator file released with the authors' code (horse2zebra.pth).
"""
import pathlib
import sys

from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))  # where translate.py is
import translate  # noqa: E402 (after the path line above)

USAGE = "usage: python docs/example.py CHECKPOINT INPUT OUTPUT [x2y|y2x]"


def main(argv):
    if len(argv) not in (3, 4) or argv[3:] not in ([], ["x2y"], ["y2x"]):
        print(USAGE, file=sys.stderr)
        return 2
    checkpoint, source, target = argv[:3]
    direction = argv[3] if len(argv) > 3 else "x2y"
    try:
        generator = translate.load_generator(checkpoint, direction)  # F for "y2x"; device="cuda"
        translate.translate_image(generator, Image.open(source)).save(target)  # the same size
    except (OSError, ValueError) as e:  # no such file, not a checkpoint, not an image
        print(f"error: {translate.shown(e)}", file=sys.stderr)
        return 1
    print(f"{source} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
