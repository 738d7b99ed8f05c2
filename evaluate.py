"""Not the paper: how good a checkpoint's G and F are (cf. Sec. 5.1): on the toy domains of
toy.py, against ground truth; on real data, by FID and KID (fid.py) beside two reference points.

Toy: testB/k.png is what G(testA/k.png) should be, so the error is the mean L1 distance in [-1, 1]
pixel units, as in Eq. 2, next to two baselines that learn nothing: the input itself, and the mean
image of the target domain. Real data: G(testA) against testB and F(testB) against testA, next to
"no translation" (testA against testB) and "as good as real" (train against test of one domain).
"""
import argparse
import os
import sys

import torch

import checkpoints
import fid
import report
from cyclegan import Generator
from data import UnpairedDataset, resolve_dataroot
from toy import format_errors, ground_truth_errors, is_toy, load_pairs
from distributed import pick_device


# FID and KID on real data (fid.py), on uint8 images as PNG files would store them.

def to_uint8(t):
    """(N, 3, H, W) in [-1, 1] -> a list of N uint8 (3, H, W) images."""
    return list(((t.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte())


def split_images(root, split, domain, size, count=None):
    """The images of one split and domain (testA is "test", "X") resized to size x size, and how
    many the split has; with count, only that many, spread evenly over the sorted names."""
    data = UnpairedDataset(root, split, size, size)
    n = len(data.paths[domain])
    picks = range(n) if count is None or count >= n else [i * n // count for i in range(count)]
    return to_uint8(torch.stack([data.load(domain, i) for i in picks])), n


@torch.no_grad()
def translate(net, images, device, batch_size=10):
    """G or F applied to uint8 images, the outputs quantised to uint8 like saved PNGs."""
    out = []
    for k in range(0, len(images), batch_size):
        x = torch.stack(images[k:k + batch_size]).to(device).float() / 127.5 - 1  # to [-1, 1]
        out += to_uint8(net(x))
    return out


def scores(f1, f2, seed):
    """FID and KID of two feature sets: the first part of a printed line, and the numbers."""
    k, spread = fid.kid(f1, f2, seed=seed)
    d = fid.fid(f1, f2)
    spread = "n/a" if spread is None else f"{spread:.4f}"  # None: fewer than 4 images in a set
    return f"FID {d:7.2f} | KID {k:7.4f} ± {spread}", {"FID": d, "KID": k}


LETTER = {"X": "A", "Y": "B"}  # as in data.py: testA holds domain X, testB domain Y


def real_data_report(G, F, checkpoint, root, size, features, tail, seed, cache):
    """Lines of FID and KID, each yielded when ready: G(testA) vs testB and F(testB) vs testA;
    before them, once per (root, size) in cache, the reference points: testA vs testB, and train
    vs test of each domain."""
    if (root, size) not in cache:
        test = {d: split_images(root, "test", d, size)[0] for d in "XY"}
        for d in "XY":
            if len(test[d]) < 2:
                raise ValueError(f"{root}: test{LETTER[d]} holds {len(test[d])} image; FID and "
                                 "KID need at least 2 a set: add test images")
        cache[root, size] = test, {d: features(test[d]) for d in "XY"}
        feats, nx, ny = cache[root, size][1], len(test["X"]), len(test["Y"])
        yield (f"{scores(feats['X'], feats['Y'], seed)[0]} | no translation: testA (all {nx}) "
               f"vs testB (all {ny}) | {tail}", {})
        for d in "YX":
            n, L = len(test[d]), LETTER[d]
            train, n_train = split_images(root, "train", d, size, n)
            yield (f"{scores(features(train), feats[d], seed)[0]} | as good as real: train{L} "
                   f"({len(train)} of {n_train}, evenly spaced) vs test{L} (all {n}) | {tail}", {})
    (test, feats), device = cache[root, size], next(G.parameters()).device
    for net, name, source, target in ((G, "G", "X", "Y"), (F, "F", "Y", "X")):
        fakes = translate(net, test[source], device)
        text, values = scores(features(fakes), feats[target], seed)
        yield (f"{text} | {name}(test{LETTER[source]}) (all {len(fakes)}) vs "
               f"test{LETTER[target]} (all {len(test[target])}) | {checkpoint} | {tail}",
               {f"{k} {name}": v for k, v in values.items()})


PROTOCOL = ("protocol: FID (float64) and KID (unbiased MMD^2, cubic kernel, all pairs; ± is its "
            "std over 100 draws of half of each set, at most 100 images: with 200 images a set or "
            "fewer, roughly its standard error; n/a below 4 images) on the 2048 pool3 features of "
            "the FID Inception; uint8 images resized bilinearly to 299 (align_corners=False), "
            "scaled to [-1, 1], as pytorch-fid; {inputs}. FID on ~100 images is biased upward; "
            "compare at equal counts, with KID.")
# What the network is given: read from files as pytorch-fid reads them (--fid), or the test
# images of a dataset as training reads them (a checkpoint), which differs for transparency.
FOLDER_INPUTS = ("files read as pytorch-fid reads them (Pillow's convert('RGB'): alpha dropped, "
                 "EXIF rotation ignored)")
CHECKPOINT_INPUTS = ("test images read as for training (data.py: transparent pixels on white, "
                     "EXIF rotation applied), resized bicubically to the size shown")


one_line = checkpoints.first_line  # an exception as one printable line


def load_checkpoint(path):
    """G, F (on the CPU) and the dict of a train.py checkpoint; any other file is refused with
    the reason: an authors' generator file, a bare tensor, pickled code, a damaged file."""
    try:  # weights_only, and the digest of its tensors checked: see checkpoints.py
        ckpt = checkpoints.load_checkpoint(path, need=("G", "F", "epoch", "args"))
    except checkpoints.CheckpointError as e:
        raise ValueError(str(e)) from None
    args = ckpt["args"]
    G = Generator(ngf=args["ngf"], n_blocks=args["n_blocks"])  # X -> Y
    F = Generator(ngf=args["ngf"], n_blocks=args["n_blocks"])  # Y -> X
    try:
        G.load_state_dict(ckpt["G"])
        F.load_state_dict(ckpt["F"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ValueError(f"checkpoint {path}: G or F does not fit its own args ({one_line(e)})")
    return G, F, ckpt


def score_folders(dir1, dir2, device, seed):
    """One line: FID and KID of two folders of images, each image at the size it was saved."""
    images = []
    for folder in (dir1, dir2):
        found, others = fid.read_folder(folder)
        if len(found) < 2:
            raise ValueError(f"--fid {folder}: 1 image; FID and KID need at least 2 a folder")
        if others:
            files = f"{len(others)} file" + ("s" if len(others) > 1 else "")
            print(f"note: --fid {folder}: skipped {files} without an image extension "
                  f"({', '.join(os.path.basename(p) for p in others[:3])}"
                  f"{', ...' if len(others) > 3 else ''})")
        images.append(found)
    network, sha = fid.load_network()
    sizes = sorted({f"{im.shape[2]}x{im.shape[1]}" for ims in images for im in ims})
    f1, f2 = (fid.features(network.to(device), ims, device=device) for ims in images)
    return (f"{scores(f1, f2, seed)[0]} | {dir1} (all {len(f1)}) vs {dir2} (all {len(f2)}) | "
            f"as saved: {', '.join(sizes)} px | network sha256 {sha[:8]} | KID seed {seed}")


def add_to_results_page(path, ckpt, values, protocol):
    """FID and KID of a checkpoint in a train.py run folder join its metrics.csv, and so the
    curve on its index.html (report.py), at the checkpoint's epoch: one row per epoch and
    protocol (what was scored: dataroot, size, image counts), so scoring again replaces it."""
    run = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(os.path.join(run, "loss_log.csv")):
        return  # a checkpoint copied elsewhere: nothing to add to
    report.append_metrics(run, ckpt["epoch"], values, protocol)
    report.write_index(run, f"CycleGAN: {run}",
                       {k: v for k, v in ckpt["args"].items() if k != "explicit"})
    print(f"added to {os.path.join(run, 'metrics.csv')} and index.html (epoch {ckpt['epoch']})")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    a = p.add_argument
    a("checkpoint", nargs="*", help="train.py checkpoints, e.g. runs/NAME/latest.pt; with several "
      "(epoch_005.pt epoch_010.pt), the reference points are computed once")
    a("--dataroot", default=None, help="default: the checkpoint's own --dataroot")
    a("--size", type=int, default=None,
      help="translate and score at SIZE x SIZE (default: the checkpoint's --crop_size)")
    a("--fid", nargs=2, metavar=("DIR1", "DIR2"),
      help="FID and KID of two folders of images, each image as saved (no checkpoint)")
    a("--seed", type=int, default=0, help="seeds KID's subset draws")
    a("--cuda", action="store_true", help="run on the GPU (fails if none is visible)")
    a("--device", default=None, help="a torch device by name, e.g. cuda:1 or cpu")
    args = p.parse_args(argv)
    if bool(args.fid) == bool(args.checkpoint):
        p.error("give either checkpoint files or --fid DIR1 DIR2")
    if args.size is not None and (args.size < 24 or args.size % 4):
        p.error(f"--size {args.size}: a multiple of 4, at least 24 (as train.py's --crop_size)")
    if args.seed < 0:
        p.error(f"--seed {args.seed}: must be 0 or more")
    return args


def main(argv=None):
    a = parse_args(argv)
    try:
        device = pick_device(a)
        network, skipped = None, False
        if a.fid:
            line = score_folders(*a.fid, device, a.seed)
            print(PROTOCOL.format(inputs=FOLDER_INPUTS) + "\n" + line)
            return 0
        cache = {}
        for path in a.checkpoint:
            G, F, ckpt = load_checkpoint(path)
            G, F, args = G.to(device), F.to(device), ckpt["args"]
            root = resolve_dataroot(a.dataroot or args["dataroot"])
            size = a.size or args["crop_size"]
            if is_toy(root):
                x, y = load_pairs(root, size, device)
                print(f"{path} (epoch {ckpt['epoch']}), {len(x)} test pairs: "
                      + format_errors(ground_truth_errors(G, F, x, y)))
            if network is None:
                try:
                    network, sha = fid.load_network()
                    network = network.to(device)
                    print(PROTOCOL.format(inputs=CHECKPOINT_INPUTS))
                except FileNotFoundError as e:  # the toy has its ground truth; real data needs it
                    if not is_toy(root):
                        raise
                    if not skipped:
                        print(f"note: FID/KID skipped: {one_line(e)}")
                    skipped = True
                    continue
            tail = f"{size}x{size} px | network sha256 {sha[:8]} | KID seed {a.seed}"
            found = {}
            for line, values in real_data_report(
                    G, F, f"{path} (epoch {ckpt['epoch']})", root, size,
                    lambda ims: fid.features(network, ims, device=device), tail, a.seed, cache):
                print(line, flush=True)
                found.update(values)
            test = cache[root, size][0]
            n_x, n_y = len(test["X"]), len(test["Y"])
            add_to_results_page(path, ckpt, found, f"evaluate.py: {root} (testA {n_x} + testB "
                                f"{n_y} image{'' if n_x + n_y == 1 else 's'} at {size}x{size} px)")
    except (ValueError, OSError, RuntimeError) as e:
        raise SystemExit(f"error: {one_line(e)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
