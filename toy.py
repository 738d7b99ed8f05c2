"""Not the paper: the toy domains, shapes in two styles drawn so that a CPU learns in a minute.

X draws circles, squares and triangles yellow on navy, Y the same kinds of shapes red with a black
outline on paper. Training images of X and Y are drawn independently (unpaired, as in the paper);
each test image of X has its ground truth in Y, the same shapes in the other style, so that
load_pairs and ground_truth_errors (below) score G and F by their distance to it. `python train.py`
with no --dataroot draws them into datasets/toy/ on first use (data.resolve_dataroot).
"""
import os
import shutil

import numpy as np
import torch
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


# How close G and F come to the ground truth (evaluate.py, and train.py after each epoch)

def load_pairs(root, crop_size, device="cpu"):
    """The test images of X and Y as two (N, 3, H, W) tensors: x[k] and y[k] share their content."""
    from data import UnpairedDataset  # here, not at the top: data.py imports this file
    test = UnpairedDataset(root, "test", crop_size, crop_size)
    names = {d: [os.path.basename(p) for p in test.paths[d]] for d in ("X", "Y")}
    if names["X"] != names["Y"]:
        raise ValueError(f"{root}/testA and testB do not hold the same file names, so they "
                         "cannot be ground-truth pairs")
    x = torch.stack([test.load("X", k, None) for k in range(len(test.paths["X"]))])
    y = torch.stack([test.load("Y", k, None) for k in range(len(test.paths["Y"]))])
    return x.to(device), y.to(device)


@torch.no_grad()
def ground_truth_errors(G, F, x, y, batch_size=50):
    """Mean L1 error of G(x) against y and of F(y) against x, where x[k] and y[k] are one content,
    next to the two baselines: the input unchanged, and the mean image of the target domain.

    G and F need no .eval(): they have no dropout, and instance norm uses each image's own
    statistics in both modes. The mean image is taken over the test images themselves.
    """
    fake_y = torch.cat([G(b) for b in x.split(batch_size)])  # G(x), should be y
    fake_x = torch.cat([F(b) for b in y.split(batch_size)])  # F(y), should be x
    return {
        "G": (fake_y - y).abs().mean().item(),
        "G input": (x - y).abs().mean().item(),  # translation by doing nothing
        "G mean": (y.mean(0, keepdim=True) - y).abs().mean().item(),  # one image for every input
        "F": (fake_x - x).abs().mean().item(),
        "F input": (y - x).abs().mean().item(),
        "F mean": (x.mean(0, keepdim=True) - x).abs().mean().item(),
    }


def format_errors(e):
    """One line: both generators' errors and, in brackets, the baselines they should beat."""
    return (f"L1 to ground truth: G(x) {e['G']:.3f} (input {e['G input']:.3f}, mean y "
            f"{e['G mean']:.3f}) | F(y) {e['F']:.3f} (input {e['F input']:.3f}, mean x "
            f"{e['F mean']:.3f})")

def scorer(root, crop_size, device, G, F):
    """For train.py: a function that scores G and F on the toy's test pairs, giving a line for
    the log and the numbers for the results page (report.py); None if root is not the toy."""
    if not is_toy(root):
        return None
    pairs = load_pairs(root, crop_size, device)

    def score():
        e = ground_truth_errors(G, F, *pairs)
        return (f"{len(pairs[0])} test pairs | {format_errors(e)}",  # "NAME (label)": a baseline
                {"L1 G(x) vs y": e["G"], "L1 G(x) vs y (input)": e["G input"],  # of NAME
                 "L1 G(x) vs y (mean y)": e["G mean"], "L1 F(y) vs x": e["F"],
                 "L1 F(y) vs x (input)": e["F input"], "L1 F(y) vs x (mean x)": e["F mean"]})
    return score
