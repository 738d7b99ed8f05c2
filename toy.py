"""The toy domains: shapes in two styles, drawn here, so that a CPU learns something in a minute.

X draws circles, squares and triangles yellow on navy, Y the same kinds of shapes red with a black
outline on paper. Training images of X and Y are drawn independently (unpaired, as in the paper);
each test image of X has its ground truth in Y, the same shapes in the other style, so that
evaluate.py can score G and F by their distance to it. `python train.py` with no --dataroot draws
them into datasets/toy/ on first use (data.resolve_dataroot).
"""
import os
import shutil

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

TOY_STYLES = {  # the style of a domain: background, fill and stroke colours; the shapes are content
    "X": {"background": (25, 35, 95), "fill": (250, 205, 50), "stroke": None},  # yellow on navy
    "Y": {"background": (235, 230, 210), "fill": (205, 45, 45), "stroke": (20, 20, 20)},  # red
}
TOY_VERSION = 1  # bump when the drawing changes, so that cached copies are drawn again


def toy_content(rng, size=32):
    """The content of one toy image: 1 to 3 shapes that do not overlap, each (kind, x, y, r, angle):
    a circle (kind 0), square (1) or triangle (2) centred at (x, y), r pixels to its corners."""
    n, shapes = rng.integers(1, 4), []
    for _ in range(100):  # draw positions until n shapes fit (or give up with fewer)
        r = rng.uniform(0.16, 0.28) * size
        x, y = rng.uniform(r, size - r, size=2)
        if len(shapes) < n and all((x - a) ** 2 + (y - b) ** 2 > (r + c + 2) ** 2
                                   for _, a, b, c, _ in shapes):
            shapes.append((int(rng.integers(3)), x, y, r, rng.uniform(0, 2 * np.pi)))
    return shapes


def render_toy(shapes, style, size=32, scale=4):
    """The shapes in one domain's style: drawn `scale` times larger, then shrunk (smooth edges)."""
    mask = Image.new("L", (size * scale, size * scale), 0)
    draw = ImageDraw.Draw(mask)
    for kind, x, y, r, angle in shapes:
        x, y, r = x * scale, y * scale, r * scale
        if kind == 0:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
        else:
            corners = np.arange(kind + 2) * 2 * np.pi / (kind + 2) + angle  # 4 or 3 corners
            draw.polygon(list(zip(x + r * np.cos(corners), y + r * np.sin(corners))), fill=255)
    img = Image.new("RGB", mask.size, style["background"])
    if style["stroke"]:  # a 1-pixel outline, inside the shape: the silhouette stays the same
        img.paste(style["stroke"], mask=mask)
        mask = mask.filter(ImageFilter.MinFilter(2 * scale + 1))
    img.paste(style["fill"], mask=mask)
    return img.resize((size, size), Image.Resampling.BOX)


def make_toy(folder, n_train=1000, n_test=100, size=32, seed=0):
    """The toy dataset in the standard layout, drawn into `folder` unless already there.

    trainA (X) and trainB (Y) draw their contents independently: unpaired, as in the paper.
    testA/k.png and testB/k.png draw the same content in each style: each is the ground truth of
    the other's translation (evaluate.py). Contents come from `seed` alone.
    """
    about = (f"CycleGAN toy domains, version {TOY_VERSION}: n_train={n_train} n_test={n_test} "
             f"size={size} seed={seed}. testA/k.png and testB/k.png show the same shapes.\n")
    marker = os.path.join(folder, "toy.txt")
    if os.path.exists(marker):
        with open(marker) as f:
            if f.read() == about:
                return folder
    elif os.path.exists(folder):  # never overwrite a folder this function did not draw
        raise FileExistsError(f"{folder} exists, but holds no toy.txt: move it away to draw the "
                              "toy there")
    print(f"drawing the toy domains into {folder}/ (once)", flush=True)
    part = folder + ".part"  # drawn aside, then renamed: an interrupted run leaves no half dataset
    shutil.rmtree(part, ignore_errors=True)
    for split, n in (("train", n_train), ("test", n_test)):
        for letter, domain in (("A", "X"), ("B", "Y")):
            os.makedirs(os.path.join(part, split + letter))
            # test: one stream for both domains (paired); train: one stream per domain (unpaired)
            unpaired = split == "train" and letter == "B"
            rng = np.random.default_rng([seed, split == "train", unpaired])
            for k in range(n):
                render_toy(toy_content(rng, size), TOY_STYLES[domain], size).save(
                    os.path.join(part, split + letter, f"{k:04d}.png"))
    with open(os.path.join(part, "toy.txt"), "w") as f:
        f.write(about)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(part, folder)
    return folder


def is_toy(root):
    """Whether a dataset folder holds the toy domains (and so paired test images)."""
    return os.path.exists(os.path.join(root, "toy.txt"))
