"""Translate your own images with a trained generator (arXiv:1703.10593v7, Sec. 3 and Fig. 1):
G maps domain X to Y (`--direction x2y`), F maps Y back to X (`--direction y2x`).

Reads a train.py checkpoint (runs/NAME/latest.pt) or a generator file released with the authors'
code, keeps each image's size (padded to a multiple of 4, then cropped back), and writes the
translations and an index.html that shows each input beside its output.
"""
import argparse
import glob
import html
import os
import re
import sys
import time
import urllib.request

import torch
from PIL import Image

from cyclegan import load_official_generator
from data import IMAGE_EXTENSIONS, find_images, load_rgb, to_image, to_tensor
from train import pick_device


def first_line(e):
    """An exception's message, first line only: every error here is one line."""
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="Exit status: 0 when every input was translated; 1 on an "
                                "error, or when any input was skipped (unreadable, too large), "
                                "after the others and index.html are written.")
    a = p.add_argument
    a("--checkpoint", required=True, help="runs/NAME/latest.pt from train.py, or a generator .pth "
                                          "released with the authors' code (e.g. horse2zebra.pth)")
    a("--direction", choices=["x2y", "y2x"], default="x2y",
      help="x2y applies G (X -> Y), y2x applies F (Y -> X). Ignored for a released .pth: it holds "
           "one generator, whose direction its name gives (horse2zebra.pth: horses to zebras)")
    a("--input", nargs="+", required=True,
      help="image files; folders, searched recursively for images; glob patterns in quotes")
    a("--out", required=True, help="output folder, created if missing; gets index.html too")
    a("--size", type=int, default=None,
      help="resize (bicubic) so the shorter side is SIZE; None keeps each image's size")
    a("--ext", default="png", help="output format, by file extension: png, jpg, webp, ...")
    a("--batch_size", type=int, default=4, help="consecutive images of equal size run together")
    a("--max_megapixels", type=float, default=16.0,
      help="refuse larger images (after --size) up front: the 9-block generator with 64 filters "
           "needs about 0.9 GB of memory per megapixel on a CPU, so 16 needs about 14 GB")
    a("--cuda", action="store_true", help="run on the GPU (fails if none is visible)")
    a("--device", default=None, help="a torch device by name, e.g. cuda:1 or cpu")
    args = p.parse_args(argv)
    args.ext = "." + args.ext.lower().lstrip(".")
    if Image.registered_extensions().get(args.ext) not in Image.SAVE:
        p.error(f"--ext {args.ext[1:]}: Pillow cannot write that format")
    if min(args.size or 1, args.batch_size, args.max_megapixels) <= 0:
        p.error("--size, --batch_size and --max_megapixels must be positive")
    return args


def load_generator(path, direction):
    """G (x2y) or F (y2x) of a train.py checkpoint, or the one generator of a released file."""
    try:  # weights_only: tensors and plain values, never code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SystemExit(f"error: --checkpoint {path}: no such file")
    except Exception as e:  # pickled code; a folder, a truncated file, not a torch file at all
        if "Weights only load failed" in str(e):
            culprit = re.search(r"GLOBAL (\S+)", str(e))
            raise SystemExit(f"error: --checkpoint {path} refused: it holds more than tensors and "
                             f"plain values{f' ({culprit[1]})' if culprit else ''}, and unpickling "
                             "anything else could run code")
        raise SystemExit(f"error: cannot read --checkpoint {path}, is it a complete torch.save "
                         f"file? ({type(e).__name__}: {first_line(e)})")
    if isinstance(state, dict) and {"G", "F"} <= state.keys():
        name = "G" if direction == "x2y" else "F"
        state, which = state[name], f"{name} ({'X -> Y' if name == 'G' else 'Y -> X'})"
    elif isinstance(state, dict) and any(str(k).endswith("model.1.weight") for k in state):
        which = "the generator"
        print(f"note: {path} holds one generator (the authors' layout), so --direction is ignored")
    else:
        found = sorted(map(str, state))[:4] if isinstance(state, dict) else type(state).__name__
        raise SystemExit(f"error: --checkpoint {path}: unknown layout: expected keys 'G' and 'F' "
                         f"(train.py) or 'model.1.weight' (a released generator), found {found}")
    try:
        net = load_official_generator(state)
    except (ValueError, RuntimeError, KeyError, AttributeError, IndexError) as e:
        raise SystemExit(f"error: --checkpoint {path}: not a generator of cyclegan.py's shape: "
                         f"{first_line(e)}")
    if (net.model[1].in_channels, net.model[-2].out_channels) != (3, 3):
        raise SystemExit(f"error: --checkpoint {path}: the generator does not map RGB to RGB")
    return net, which


def find_inputs(items, out):
    """(path, name) of each input image, where OUT/name plus the extension is its output.

    A file named on the command line is always tried; folders (searched recursively, keeping their
    subfolders in the name) and glob patterns give only image files. A folder that holds --out is
    searched without it, so that a second run does not translate the first one's outputs.
    """
    out, inputs, missing = os.path.realpath(out), [], []
    for item in items:
        found = []
        for match in [item] if os.path.exists(item) else sorted(glob.glob(item, recursive=True)):
            if os.path.isdir(match):
                real = os.path.realpath(match)
                holds_out = out != real and os.path.commonpath([out, real]) == real
                for path in find_images(match):
                    if not (holds_out and os.path.commonpath([out, os.path.realpath(path)]) == out):
                        found.append((path, os.path.splitext(os.path.relpath(path, match))[0]))
            elif match == item or match.lower().endswith(IMAGE_EXTENSIONS):
                found.append((match, os.path.splitext(os.path.basename(match))[0]))
        inputs += found
        missing += [] if found else [item]
    return inputs, missing


def plan_outputs(inputs, out, ext):
    """(input, output) pairs: OUT/name.ext, or name_2.ext, name_3.ext, ... where that path is taken
    by an earlier output (two photos/cat.jpg) or is an input file: an input is never overwritten."""
    def key(path):  # lower-case: on macOS and Windows, Cat.png and cat.png are one file
        return os.path.realpath(path).lower()
    taken, seen, plan = {key(path) for path, _ in inputs}, set(), []
    for path, name in inputs:
        if os.path.realpath(path) not in seen:  # the same file may be named twice
            seen.add(os.path.realpath(path))
            target, n = os.path.join(out, name + ext), 1
            while key(target) in taken:
                n += 1
                target = os.path.join(out, f"{name}_{n}{ext}")
            taken.add(key(target))
            plan.append((path, target))
    return plan


def pad_to_multiple_of_4(x):
    """x padded at the bottom and right so each side is a multiple of 4, and at least 8.

    The generator halves the size twice (d128, d256) and doubles it twice (u128, u64), so other
    sizes come back changed, and the reflection padding of its residual blocks needs 2 pixels at
    quarter size. Not in the paper: reflecting continues the image without a seam; an image too
    small to reflect (pad >= side) repeats its edge pixels instead.
    """
    H, W = x.shape[-2:]
    pad_h, pad_w = max(8, -(-H // 4) * 4) - H, max(8, -(-W // 4) * 4) - W
    x = torch.nn.functional.pad(x, (0, pad_w, 0, 0), mode="reflect" if pad_w < W else "replicate")
    return torch.nn.functional.pad(x, (0, 0, 0, pad_h),
                                   mode="reflect" if pad_h < H else "replicate")


@torch.inference_mode()
def translate_batch(net, images, device):
    """G(x) or F(y) of same-size PIL images, as a (N, 3, H, W) tensor in [-1, 1] at their size."""
    real = torch.stack([to_tensor(img) for img in images]).to(device)  # (N, 3, H, W)
    H, W = real.shape[-2:]
    return net(pad_to_multiple_of_4(real))[..., :H, :W].cpu()  # cropped back to (N, 3, H, W)


def read_batches(plan, size, batch_size, max_pixels, skip):
    """Lists of (image, input, output) of one size: at most batch_size images, max_pixels pixels."""
    batch = []
    for path, target in plan:
        try:
            img = load_rgb(path)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            skip(path, f"not a readable image ({first_line(e)})")
            continue
        if size:  # shorter side to `size`, aspect ratio kept
            scale = size / min(img.size)
            img = img.resize([max(1, round(s * scale)) for s in img.size], Image.Resampling.BICUBIC)
        pixels = img.width * img.height
        if pixels > max_pixels:
            skip(path, f"{img.width}x{img.height} is {pixels / 1e6:.1f} megapixels, more than "
                       f"--max_megapixels {max_pixels / 1e6:g}: add --size 1024 (say) to shrink it")
            continue
        if batch and (img.size != batch[0][0].size or len(batch) >= batch_size
                      or (len(batch) + 1) * pixels > max_pixels):
            yield batch
            batch = []
        batch.append((img, path, target))
    if batch:
        yield batch


def write_index(out, title, done, skipped):
    """OUT/index.html: each input beside its translation (relative links), then what was skipped."""
    def cell(path, label):
        url = urllib.request.pathname2url(os.path.relpath(path, out))
        return f'<td><img src="{html.escape(url)}"><br>{html.escape(label)}</td>'
    rows = [f"<tr>{cell(src, src)}{cell(dst, os.path.relpath(dst, out))}</tr>" for src, dst in done]
    rows += [f'<tr><td colspan="2">skipped {html.escape(src)}: {html.escape(why)}</td></tr>'
             for src, why in skipped]
    with open(os.path.join(out, "index.html"), "w", encoding="utf-8") as f:
        f.write(f'<!doctype html>\n<meta charset="utf-8"><title>{html.escape(title)}</title>\n'
                "<style>img { width: 320px } td { vertical-align: top }</style>\n"
                f"<h1>{html.escape(title)}</h1>\n<table>\n<tr><th>input</th><th>output</th></tr>\n"
                + "\n".join(rows) + "\n</table>\n")


def main(argv=None):
    args = parse_args(argv)
    device = pick_device(args)
    net, which = load_generator(args.checkpoint, args.direction)
    net = net.to(device).eval()  # eval: by convention; no dropout or running statistics here
    inputs, missing = find_inputs(args.input, args.out)
    skipped = []

    def skip(path, why):
        print(f"warning: skipping {path}: {why}", file=sys.stderr, flush=True)
        skipped.append((path, why))
    for item in missing:
        skip(item, "no such file, no images in that folder, or no image matches that pattern")
    plan = plan_outputs(inputs, args.out, args.ext)
    if not plan:
        raise SystemExit(f"error: no input images in {' '.join(args.input)}")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise SystemExit(f"error: cannot create --out {args.out}: {e}")
    print(f"translating {len(plan)} images with {which} from {args.checkpoint} on {device}")

    done, start = [], time.time()
    for batch in read_batches(plan, args.size, args.batch_size, args.max_megapixels * 1e6, skip):
        try:
            fakes = translate_batch(net, [img for img, _, _ in batch], device)
        except RuntimeError as e:  # torch.OutOfMemoryError is a RuntimeError too
            if not isinstance(e, torch.OutOfMemoryError) and not re.search(
                    "out of memory|can't allocate memory", str(e)):
                raise
            W, H = batch[0][0].size
            for _, path, _ in batch:
                skip(path, f"out of memory at {W}x{H}: add --size 1024 (say), or --batch_size 1")
            continue
        for fake, (_, path, target) in zip(fakes, batch):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            to_image(fake).save(target, quality=95)  # quality: for jpg and webp; png ignores it
            done.append((path, target))
        print(f"{len(done) + len(skipped)}/{len(plan) + len(missing)} images | "
              f"{len(done) / (time.time() - start):.2f} images/s", flush=True)
    write_index(args.out, f"{which} from {args.checkpoint}", done, skipped)
    print(f"translated {len(done)} images into {args.out}/ (see {args.out}/index.html)"
          + (f"; skipped {len(skipped)}, listed above" if skipped else ""))
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
