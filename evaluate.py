"""How close G and F come to the right answer, on a dataset whose test images are paired.

CycleGAN trains without pairs (arXiv:1703.10593v7, Sec. 3), but the toy domains of data.py draw each
test content in both styles: testB/k.png is what G(testA/k.png) should be, and the other way round.
The error is the mean L1 distance in [-1, 1] pixel units, as in Eq. 2, beside two baselines that
learn nothing: the input itself, and the mean image of the target domain, whatever the input.
`python evaluate.py runs/toy/latest.pt` prints the figures for a checkpoint.
"""
import argparse
import os
import sys

import torch

from cyclegan import Generator
from data import UnpairedDataset, resolve_dataroot


def load_pairs(root, crop_size, device="cpu"):
    """The test images of X and Y as two (N, 3, H, W) tensors: x[k] and y[k] share their content."""
    test = UnpairedDataset(root, "test", crop_size, crop_size)
    names = {d: [os.path.basename(p) for p in test.paths[d]] for d in ("X", "Y")}
    if names["X"] != names["Y"]:
        raise SystemExit(f"error: {root}/testA and testB do not hold the same file names, so they "
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


def main(argv=None):
    p = argparse.ArgumentParser(description="Errors of a checkpoint's G and F against the ground "
                                            "truth of a paired test split (the toy domains).")
    p.add_argument("checkpoint", help="a checkpoint of train.py, e.g. runs/toy/latest.pt")
    p.add_argument("--dataroot", default=None, help="default: the checkpoint's own --dataroot")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    try:  # weights_only: a checkpoint file must never run code
        ckpt = torch.load(a.checkpoint, map_location=a.device, weights_only=True)
    except Exception as e:  # missing, truncated, not a checkpoint, pickled code
        raise SystemExit(f"error: cannot read checkpoint {a.checkpoint}: {str(e).splitlines()[0]}")
    args = ckpt["args"]
    G = Generator(ngf=args["ngf"], n_blocks=args["n_blocks"]).to(a.device)  # X -> Y
    F = Generator(ngf=args["ngf"], n_blocks=args["n_blocks"]).to(a.device)  # Y -> X
    G.load_state_dict(ckpt["G"])
    F.load_state_dict(ckpt["F"])
    x, y = load_pairs(resolve_dataroot(a.dataroot or args["dataroot"]), args["crop_size"], a.device)
    print(f"{a.checkpoint} (epoch {ckpt['epoch']}), {len(x)} test pairs: "
          + format_errors(ground_truth_errors(G, F, x, y)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
