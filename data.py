"""Unpaired training data for CycleGAN (arXiv:1703.10593v7, Sec. 4 and appendix 7.1).

The dataset folder holds domain X in `trainA`/`testA` and domain Y in `trainB`/`testB`, the layout
of the authors' datasets (or `train/A`, `train/B`, `test/A`, `test/B`). Each item pairs one image
of X with a randomly drawn image of Y. Also here: the image transforms (Pillow and numpy), the
history pool of 50 fakes (Sec. 4), and where --dataroot points (the toy domains of toy.py are drawn
on first use). `python data.py download NAME` runs download.py. Functions raise OSError or
ValueError.
"""
import os
import random
import sys

import numpy as np
import torch
from PIL import Image, ImageOps

import toy

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# The authors' datasets, by name: `python data.py download NAME` (download.py) fetches one.
DATASETS = ("horse2zebra", "apple2orange", "summer2winter_yosemite", "monet2photo", "cezanne2photo",
            "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower")


def find_images(folder):
    """Every image file under `folder`, searched recursively, in sorted order (any letter case).
    Linked subfolders are not followed (a link loop would never end); `folder` itself may be one."""
    found = [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files
             if f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def load_rgb(path):
    """An image file as 8-bit RGB, whatever it holds: grayscale, 16-bit, palette, CMYK, alpha."""
    with Image.open(path) as img:
        return as_rgb(img)


def as_rgb(img):
    """A PIL image as 8-bit RGB (load_rgb's conversion, for an image already open or in memory)."""
    img = ImageOps.exif_transpose(img)  # phone photos: apply the stored rotation
    if img.mode.startswith("I"):  # 16-bit grayscale (Pillow opens it as I or I;16)
        a = np.asarray(img, dtype=np.float32) / 257.0  # 0..65535 -> 0..255, dark stays dark
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    elif img.mode == "F":  # float grayscale, taken to lie in [0, 1]
        a = np.asarray(img, dtype=np.float32) * 255.0
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        img = img.convert("RGBA")  # transparent pixels become white, not what lies under them
        return Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert("RGB")
    return img.convert("RGB")


def to_tensor(img):
    """A PIL RGB image as a (3, H, W) float tensor in [-1, 1], the range of the generator's tanh."""
    a = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def to_image(t):
    """A (3, H, W) tensor in [-1, 1] back to a PIL RGB image."""
    a = ((t.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()
    return Image.fromarray(a.permute(1, 2, 0).numpy())


def train_transform(img, load_size, crop_size, rng):
    """Resize to load_size square (bicubic), random crop_size crop, random horizontal flip.

    Not in the paper's text: the authors' code jitters 256x256 images this way (286 -> 256).
    An image smaller than the crop is simply upscaled by the resize.
    """
    img = img.resize((load_size, load_size), Image.Resampling.BICUBIC)
    left, top = rng.integers(0, load_size - crop_size + 1, size=2)
    img = img.crop((left, top, left + crop_size, top + crop_size))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return to_tensor(img)


def test_transform(img, crop_size):
    """Resize to crop_size square (bicubic); no crop, no flip."""
    return to_tensor(img.resize((crop_size, crop_size), Image.Resampling.BICUBIC))


def split_folders(root, phase="train"):
    """The folders of X and Y for one split, and the layout found: `trainA/`, `trainB/` (the
    authors'), or `train/A/`, `train/B/` (other implementations). trainA (or train/A) holds X."""
    if os.path.exists(root) and not os.path.isdir(root):
        raise NotADirectoryError(f"{root} is a file, not a folder: give the folder that holds "
                                 f"{phase}A/ and {phase}B/ (or {phase}/A/ and {phase}/B/)")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{root}: no such folder")
    for layout, x, y in ((f"{phase}A/ and {phase}B/", phase + "A", phase + "B"),
                         (f"{phase}/A/ and {phase}/B/", os.path.join(phase, "A"),
                          os.path.join(phase, "B"))):
        if os.path.isdir(os.path.join(root, x)) and os.path.isdir(os.path.join(root, y)):
            return os.path.join(root, x), os.path.join(root, y), layout
    raise FileNotFoundError(f"{root} holds neither {phase}A/ and {phase}B/ nor {phase}/A/ and "
                            f"{phase}/B/: put the images of domain X in the first folder of "
                            "either pair and those of Y in the second")


def has_split(root, phase):
    """Whether a dataset folder holds the split `phase` (train or test) in either layout."""
    try:
        split_folders(root, phase)
        return True
    except OSError:
        return False


def usable_images(folder):
    """The image files under `folder` that Pillow opens, the first of them decoded in full (a
    header can be fine and the pixels not). Each file that fails is reported by name and skipped."""
    found = find_images(folder)
    if not found:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}: put "
                                "the domain's images there")
    paths, bad = [], []
    for p in found:
        try:
            with Image.open(p):  # reads the header only: cheap, catches non-images
                paths.append(p)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            bad.append(p)
            print(f"warning: skipping {p}: not a readable image ({e})", file=sys.stderr)
    while paths:
        try:
            load_rgb(paths[0])
            break
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            bad.append(paths.pop(0))
            print(f"warning: skipping {bad[-1]}: cannot decode it ({e})", file=sys.stderr)
    if bad:
        files = "file" if len(bad) == 1 else "files"
        print(f"warning: skipped {len(bad)} unreadable {files} in {folder}", file=sys.stderr)
    if not paths and len(found) == 1:
        raise ValueError(f"the one image file in {folder}, {os.path.basename(found[0])}, does "
                         "not decode: replace it with a readable image")
    if not paths:
        raise ValueError(f"none of the {len(found)} image files in {folder} decodes (the first: "
                         f"{os.path.basename(found[0])}): replace them with readable images")
    return paths


class UnpairedDataset(torch.utils.data.Dataset):
    """Images of X (`trainA`) and Y (`trainB`), unaligned: item i is A[i] with a random B.

    An epoch has max(|A|, |B|) items. Randomness (which B, crop, flip) comes from (seed, epoch, i)
    alone, so the same seed gives the same data in any order, with any number of workers, and a
    resumed run sees exactly what an uninterrupted one would have. It holds only paths and
    numbers, so it pickles: loader workers started with spawn (macOS, Windows) get a copy.
    """

    def __init__(self, root, phase="train", load_size=286, crop_size=256, seed=0):
        folder_x, folder_y, self.layout = split_folders(root, phase)
        self.paths = {"X": usable_images(folder_x), "Y": usable_images(folder_y)}
        self.phase, self.load_size, self.crop_size, self.seed = phase, load_size, crop_size, seed
        self.epoch = 0

    def __len__(self):
        return max(len(self.paths["X"]), len(self.paths["Y"]))

    def load(self, domain, i, rng=None):
        """Image i of a domain, transformed (randomly when training, given an rng); a file that
        fails to decode is reported and replaced by the next one."""
        paths = self.paths[domain]
        for k in range(len(paths)):
            path = paths[(i + k) % len(paths)]
            try:
                img = load_rgb(path)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                print(f"warning: skipping {path}: cannot decode it ({e})", file=sys.stderr)
                continue
            if self.phase == "train" and rng is not None:
                return train_transform(img, self.load_size, self.crop_size, rng)
            return test_transform(img, self.crop_size)
        raise ValueError(f"no image file of {os.path.dirname(paths[0])} decodes any more")

    def __getitem__(self, i):
        rng = np.random.default_rng([self.seed, self.epoch, i])
        j = rng.integers(len(self.paths["Y"]))  # unaligned: any y may meet this x
        return self.load("X", i % len(self.paths["X"]), rng), self.load("Y", j, rng)

    def order(self, epoch):
        """The shuffled order of items in an epoch, fixed by (seed, epoch)."""
        return np.random.default_rng([self.seed, epoch, 2**31]).permutation(len(self)).tolist()


class ImagePool:
    """The history of generated images that the discriminators train on (Sec. 4, after Shrivastava
    et al.): "we keep an image buffer that stores the 50 previously created images".

    While fewer than pool_size images are stored, each new fake is stored and returned. Afterwards,
    for each new fake, with probability 0.5 a random stored image is returned and the new one takes
    its place; otherwise the new fake itself is returned.
    """

    def __init__(self, pool_size=50, seed=0):
        self.pool_size = pool_size
        self.images = []
        self.rng = random.Random(seed)

    def query(self, images):
        if self.pool_size == 0:
            return images.detach()
        out = []
        for image in images.detach():  # stored fakes carry no graph back into G or F
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif self.rng.random() < 0.5:
                k = self.rng.randrange(self.pool_size)
                out.append(self.images[k])
                self.images[k] = image
            else:
                out.append(image)
        return torch.cat(out)

    def state_dict(self):
        return {"images": [i.cpu() for i in self.images], "rng": self.rng.getstate()}

    def load_state_dict(self, state, device="cpu"):
        self.images = [i.to(device) for i in state["images"]]
        self.rng.setstate(state["rng"])


def resolve_dataroot(dataroot):
    """The folder for --dataroot: as given, or datasets/NAME; a known dataset name not yet
    downloaded gets the command that fetches it. "toy" draws the toy domains on first use."""
    if dataroot == "toy":
        return toy.make_toy(os.path.join("datasets", "toy"))
    if os.path.exists(dataroot) and not os.path.isdir(dataroot):
        hint = " (unpack it first)" if dataroot.lower().endswith(".zip") else ""
        raise NotADirectoryError(f"--dataroot {dataroot} is a file, not a folder{hint}: give the "
                                 "folder that holds trainA/ and trainB/ (or train/A/ and train/B/)")
    for folder in (dataroot, os.path.join("datasets", dataroot)):
        if os.path.isdir(folder):
            return folder
    if dataroot in DATASETS:
        raise FileNotFoundError(f"--dataroot {dataroot}: no such folder; download it first with "
                                f"`python data.py download {dataroot}`")
    raise FileNotFoundError(f"--dataroot {dataroot}: no such folder (it should hold trainA/ and "
                            f"trainB/; known dataset names: {', '.join(DATASETS)})")


if __name__ == "__main__":  # `python data.py download NAME`: the tool lives in download.py
    import download
    sys.exit(download.main())
