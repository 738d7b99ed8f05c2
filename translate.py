"""Not the paper: translate your own images with a trained generator (Sec. 3 and Fig. 1):
G maps domain X to Y (`--direction x2y`), F maps Y back to X (`--direction y2x`).

From Python: `load_generator` reads a train.py checkpoint or a generator file released with the
authors' code; `translate_image` (a PIL image, its size kept) and `translate_tensor` (a batch) apply
it. The command line is built on the same functions and writes an index.html of inputs and outputs.
"""
import argparse
import glob
import html
import os
import pathlib
import re
import sys
import tempfile
import time
import urllib.parse

import torch
from PIL import Image, ImageOps

import checkpoints
from checkpoints import first_line as shown  # one printable line
from cyclegan import load_official_generator
from data import IMAGE_EXTENSIONS, as_rgb, find_images, to_image, to_tensor
from distributed import pick_device

KEEPS_ALPHA = ("PNG", "WEBP", "TIFF")  # formats in which an output keeps its input's transparency


def read_generator(path, direction="x2y"):
    """(Generator, name) for G (x2y) or F (y2x) of a train.py checkpoint, or for the one generator
    of a file released with the authors' code (then `direction` does not apply)."""
    state = checkpoints.read_file(path)  # weights_only: tensors and plain values, never code
    if isinstance(state, dict) and {"G", "F"} <= state.keys():
        try:
            state = checkpoints.check_digest(path, state)
        except checkpoints.CheckpointError as e:
            raise ValueError(f"{e}; use a kept copy epoch_NNN.pt from the same run") from None
        name = "G" if direction == "x2y" else "F"
        state, which = state[name], f"{name} ({'X -> Y' if name == 'G' else 'Y -> X'})"
    elif isinstance(state, dict) and any(str(k).endswith("model.1.weight") for k in state):
        which = "the generator"
    elif isinstance(state, torch.Tensor):
        raise ValueError(f"{path} holds one tensor of shape {tuple(state.shape)}, not a network: "
                         "give runs/NAME/latest.pt from train.py or a released generator .pth")
    else:
        found = sorted(map(str, state))[:4] if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path}: unknown layout: expected keys 'G' and 'F' (train.py) or "
                         f"'model.1.weight' (a released generator), found {found}")
    try:
        net = load_official_generator(state)
    except (ValueError, RuntimeError, KeyError, AttributeError, IndexError) as e:
        raise ValueError(f"{path}: not a generator of cyclegan.py's shape: {shown(e)}") from None
    if (net.model[1].in_channels, net.model[-2].out_channels) != (3, 3):
        raise ValueError(f"{path}: the generator does not map RGB to RGB")
    return net, which


def load_generator(path, direction="x2y", device="cpu"):
    """G (direction x2y) or F (y2x) of a train.py checkpoint, or a released generator, on `device`.

        G = translate.load_generator("runs/horse2zebra/latest.pt")  # F: direction="y2x"
    """
    net, _ = read_generator(path, direction)
    return net.to(device).eval()  # eval: by convention; no dropout or running statistics here


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


@torch.no_grad()
def translate_tensor(net, x):
    """G(x) or F(y) of a (N, 3, H, W) batch in [-1, 1] (data.to_tensor's range), any H and W.

    Computed on the generator's device, returned on x's, in the shape and dtype of x. The network's
    train/eval mode does not matter: instance norm always uses each image's own statistics.
    """
    if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"expected a (N, 3, H, W) float batch in [-1, 1], got {x.dtype} of shape "
                         f"{tuple(x.shape)}: use data.to_tensor(image).unsqueeze(0)")
    H, W = x.shape[-2:]
    weight = next(net.parameters())  # its device and precision (float32, or half on a GPU)
    fake = net(pad_to_multiple_of_4(x.to(weight.device, weight.dtype)))[..., :H, :W]  # cropped
    return fake.to(x.device, x.dtype)


def resized_size(width, height, size):
    """(width, height) with the shorter side made `size` (None: unchanged), aspect ratio kept."""
    scale = size / min(width, height) if size else 1
    return max(1, round(width * scale)), max(1, round(height * scale))


def resized(img, size):
    """A PIL image with its shorter side made `size` (bicubic); None keeps it as it is. RGBA's
    colour and alpha are resized apart: Pillow's RGBA resize would darken the white that
    as_rgb puts under transparent pixels."""
    if not size:
        return img
    if img.mode == "RGBA":
        out = resized(img.convert("RGB"), size)
        out.putalpha(resized(img.getchannel("A"), size))
        return out
    return img.resize(resized_size(*img.size, size), Image.Resampling.BICUBIC)


def with_alpha(img):
    """data.as_rgb(img), the colours training sees (transparent areas on white), plus img's
    transparency as an alpha channel (RGBA) if it has any."""
    rgb = as_rgb(img)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:  # as_rgb's test
        rgb.putalpha(ImageOps.exif_transpose(img).convert("RGBA").getchannel("A"))
    return rgb


def translate_rgba(net, img):
    """G(x) or F(y) of an RGB or RGBA image (with_alpha's), as an image of its mode: the alpha
    channel is the input's, unchanged."""
    fake = to_image(translate_tensor(net, to_tensor(img.convert("RGB")).unsqueeze(0))[0])
    if img.mode == "RGBA":
        fake.putalpha(img.getchannel("A"))
    return fake


def translate_image(net, img, size=None):
    """G(x) or F(y) of a PIL image in any mode, as an image of its size (or with the shorter
    side resized to `size`, bicubic, first): RGB, or RGBA with the input's own transparency
    where it has any (JPEG holds none: `.convert("RGB")` before saving one).

        zebra = translate.translate_image(G, Image.open("horse.jpg"))
    """
    return translate_rgba(net, resized(with_alpha(img), size))


def read_image(path, size=None, max_megapixels=16.0):
    """An image file as with_alpha gives it (RGB, or RGBA where it has transparency), resized as
    translate_image does. Too large for `max_megapixels` is a ValueError, found from the file's
    header before any pixel is decoded or resized."""
    limit = Image.MAX_IMAGE_PIXELS  # Pillow's guard against decompression bombs, replaced here by
    Image.MAX_IMAGE_PIXELS = None  # checks that name our flags, and restored at once
    try:
        with Image.open(path) as img:  # reads the header only
            (W, H), mp = img.size, img.width * img.height / 1e6
            w, h = resized_size(W, H, size)
            if w * h / 1e6 > max_megapixels:
                raise ValueError(f"{W}x{H}{f' resized to {w}x{h}' if size else ''} is "
                                 f"{w * h / 1e6:.3g} megapixels, more than --max_megapixels "
                                 f"{max_megapixels:g}: " + ("use a smaller --size" if size else
                                                            "add --size 1024 (say) to shrink it"))
            if limit and mp > max(max_megapixels, limit / 1e6):  # only with --size
                raise ValueError(f"{W}x{H} is {mp:.0f} megapixels, more than Pillow decodes by "
                                 f"default ({limit / 1e6:.0f}, against decompression bombs): "
                                 f"add --max_megapixels {mp + 1:.0f} if you trust the file")
            img = with_alpha(img)  # decodes
    except (OSError, SyntaxError) as e:
        raise OSError(f"not a readable image ({shown(e)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return resized(img, size)  # after with_alpha: a phone photo's rotation may swap W and H


def find_inputs(items, out):
    """(path, name) of each input image, where OUT/name plus the extension is its output; and the
    items that gave none. A file named on the command line is always tried; folders (searched
    recursively, keeping their subfolders in the name) and glob patterns give only image files,
    and never any from --out: a second run does not translate the first one's outputs."""
    out, inputs, missing = os.path.realpath(out), [], []

    def in_out(path):
        return os.path.commonpath([out, os.path.realpath(path)]) == out
    for item in items:
        found, matches = [], [item] if os.path.exists(item) else glob.glob(item, recursive=True)
        for match in sorted(matches):
            if match == item and os.path.isfile(match):
                found.append((match, os.path.splitext(os.path.basename(match))[0]))
            elif os.path.isdir(match):
                found += [(path, os.path.splitext(os.path.relpath(path, match))[0])
                          for path in find_images(match) if not in_out(path)]
            elif match.lower().endswith(IMAGE_EXTENSIONS) and not in_out(match):
                found.append((match, os.path.splitext(os.path.basename(match))[0]))
        inputs += found
        missing += [] if found or any(map(in_out, matches)) else [item]
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


def make_out(out, targets, overwrite):
    """Create the folder --out, or say why this run cannot write `targets` there: it is a file or
    read-only, or (without `overwrite`) some exist: we never replace what we did not write."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise NotADirectoryError(f"--out {out} is a file: give a folder")
    there = [t for t in targets if os.path.lexists(t)]
    if there and not overwrite:
        names = ", ".join([os.path.basename(t) for t in there[:3]] + ["..."] * (len(there) > 3))
        raise FileExistsError(f"--out {out} already holds {len(there)} of this run's output files "
                              f"({names}): add --overwrite to replace them, or choose another "
                              "--out")
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # can we write there at all?
            pass
    except OSError as e:
        raise PermissionError(f"--out {out}: cannot write there ({e.strerror or e})") from None


def write_atomically(target, write):
    """write(temporary path), then rename it to `target`: a stopped run leaves no half a file."""
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def count(n, noun):
    """'1 image', '2 images': a count in a message."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def write_index(out, title, done, skipped):
    """OUT/index.html: each input beside its translation (done: (input, output, its width)),
    with relative links, then what was skipped. A file name that is not UTF-8 is linked by its
    bytes and shown with \\xNN escapes. Both images are shown 320 pixels wide, or, where the
    output is narrower, enlarged by a whole factor with sharp pixels."""
    def cell(path, label, width):
        url = urllib.parse.quote(os.fsencode(os.path.relpath(path, out).replace(os.sep, "/")))
        scale = 320 // width if width < 320 else 0  # 0: shrunk to 320, smoothly
        look = (f' width="{width * scale}" class="pixelated"' if scale else ' width="320"')
        return f'<td><img src="{url}"{look}><br>{html.escape(label)}</td>'
    rows = [f"<tr>{cell(src, shown(src), width)}"
            f"{cell(dst, shown(os.path.relpath(dst, out)), width)}</tr>"
            for src, dst, width in done]
    rows += [f'<tr><td colspan="2">skipped {html.escape(shown(src))}: {html.escape(why)}</td></tr>'
             for src, why in skipped]
    page = (f'<!doctype html>\n<meta charset="utf-8"><title>{html.escape(title)}</title>\n'
            "<style>img.pixelated { image-rendering: pixelated } td { vertical-align: top }"
            "</style>\n"
            f"<h1>{html.escape(title)}</h1>\n<table>\n<tr><th>input</th><th>output</th></tr>\n"
            + "\n".join(rows) + "\n</table>\n")
    write_atomically(os.path.join(out, "index.html"),
                     lambda tmp: pathlib.Path(tmp).write_text(page, encoding="utf-8"))


def read_batches(plan, size, batch_size, max_megapixels, skip):
    """Lists of (image, input, output) of one size: at most batch_size images and max_megapixels."""
    batch = []
    for path, target in plan:
        try:
            img = read_image(path, size, max_megapixels)
        except (OSError, ValueError) as e:
            skip(path, shown(e))
            continue
        if batch and (img.size != batch[0][0].size or len(batch) >= batch_size
                      or (len(batch) + 1) * img.width * img.height > max_megapixels * 1e6):
            yield batch
            batch = []
        batch.append((img, path, target))
    if batch:
        yield batch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                epilog="Exit status: 0 when every input was translated; 1 on an "
                                "error, or when any input was skipped (unreadable, too large), "
                                "after the others and index.html are written.")
    a = p.add_argument
    a("--checkpoint", required=True, help="runs/NAME/latest.pt from train.py, or a generator .pth "
                                          "released with the authors' code (e.g. horse2zebra.pth)")
    a("--direction", choices=["x2y", "y2x"], default="x2y", help="x2y applies G (X -> Y), y2x "
      "applies F (Y -> X); a released .pth holds one generator (horse2zebra.pth: horses to zebras)")
    a("--input", nargs="+", required=True,
      help="image files; folders, searched recursively for images; glob patterns in quotes")
    a("--out", required=True, help="output folder, created if missing; gets index.html too")
    a("--overwrite", action="store_true",
      help="replace output files (and index.html) that already exist in --out")
    a("--size", type=int, default=None,
      help="resize (bicubic) so the shorter side is SIZE; None keeps each image's size")
    a("--ext", default="png", help="output format, by file extension: png, jpg, webp, ...; "
      "png, webp and tiff keep an input's transparency")
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
    if (args.size or 0) ** 2 > args.max_megapixels * 1e6:  # the shorter side squared, at least
        p.error(f"--size {args.size} makes every image at least {args.size ** 2 / 1e6:g} "
                f"megapixels, more than --max_megapixels {args.max_megapixels:g}")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        device = pick_device(args)
    except ValueError as e:
        raise SystemExit(f"error: {shown(e)}")
    try:
        net, which = read_generator(args.checkpoint, args.direction)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: --checkpoint {shown(e)}")
    net = net.to(device).eval()  # as load_generator does
    if not which.startswith(("G ", "F ")):
        print(f"note: {shown(args.checkpoint)} holds one generator (the authors' layout), "
              "so --direction is ignored")
    inputs, missing = find_inputs(args.input, args.out)
    skipped = []

    def skip(path, why):
        print(f"warning: skipping {shown(path)}: {why}", file=sys.stderr, flush=True)
        skipped.append((path, why))
    for item in missing:
        skip(item, "no such file, no images in that folder, or no image matches that pattern")
    plan = plan_outputs(inputs, args.out, args.ext)
    if not plan:
        raise SystemExit(f"error: no input images in {shown(' '.join(args.input))}"
                         + (" outside --out: a run never reads its own output folder"
                            if len(missing) < len(args.input) else ""))
    try:
        make_out(args.out, [t for _, t in plan] + [os.path.join(args.out, "index.html")],
                 args.overwrite)
    except OSError as e:
        raise SystemExit(f"error: {shown(e)}")
    print(f"translating {count(len(plan), 'image')} with {which} from {shown(args.checkpoint)} "
          f"on {device}")

    done, start, fmt = [], time.time(), Image.registered_extensions()[args.ext]
    for batch in read_batches(plan, args.size, args.batch_size, args.max_megapixels, skip):
        try:
            fakes = translate_tensor(net, torch.stack([to_tensor(img.convert("RGB"))
                                                       for img, _, _ in batch]))
        except RuntimeError as e:  # torch.OutOfMemoryError is a RuntimeError too
            if not isinstance(e, torch.OutOfMemoryError) and not re.search(
                    "out of memory|can't allocate memory", str(e)):
                raise
            W, H = batch[0][0].size
            for _, path, _ in batch:
                skip(path, f"out of memory at {W}x{H}: add --size 1024 (say), or --batch_size 1")
            continue
        for fake, (img, path, target) in zip(fakes, batch):
            fake = to_image(fake)
            if img.mode == "RGBA" and fmt in KEEPS_ALPHA:
                fake.putalpha(img.getchannel("A"))  # transparent where the input is
            try:  # quality: for jpg and webp; png ignores it
                write_atomically(target, lambda tmp: fake.save(tmp, fmt, quality=95))
            except OSError as e:  # a full disk, a file where a subfolder should be
                raise SystemExit(f"error: cannot write {shown(target)} ({shown(e.strerror or e)});"
                                 f" {count(len(done), 'image')} written before it, complete")
            done.append((path, target, fake.width))
        print(f"{len(done) + len(skipped)}/{len(plan) + len(missing)} images | "
              f"{len(done) / (time.time() - start):.2f} images/s", flush=True)
    write_index(args.out, f"{which} from {shown(args.checkpoint)}", done, skipped)
    print(f"translated {count(len(done), 'image')} into {shown(args.out)}/ (see index.html there)"
          + (f"; skipped {len(skipped)}, listed above" if skipped else ""))
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
