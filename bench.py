"""How fast one CycleGAN training iteration runs (issue 7): seconds per iteration, images per
second, peak memory, the split between data loading, generator step and discriminator step, the
data pipeline's own speed, and the FLOPs of one iteration next to the machine's matmul rate.

    python bench.py --crop_size 128 --n_blocks 9 --iters 6               # train.py's step
    python bench.py --crop_size 128 --n_blocks 9 --iters 6 --reference   # as the authors compute
    python bench.py --crop_size 128 --n_blocks 9 --iters 6 --authors ../pytorch-CycleGAN-and-pix2pix
The last line is machine-readable: median_s_per_iter=X.
"""
import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from torch import nn

from cyclegan import InstanceNorm
from data import ImagePool, UnpairedDataset
from losses import generator_objective, lsgan_d_loss
from train import amp_dtype, discriminator_step, generator_step, make_networks, pick_device


def reference_generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args):
    """Step (2) in the order of the authors' training code: six generator calls, one each."""
    # Frozen during G's step, as the authors do: no weight gradients for D_X, D_Y.
    D_X.requires_grad_(False)
    D_Y.requires_grad_(False)
    fake_y = G(real_x)
    rec_x = F(fake_y)
    fake_x = F(real_y)
    rec_y = G(fake_x)
    idt_y = G(real_y)
    idt_x = F(real_x)
    loss_G, parts = generator_objective(D_Y(fake_y), D_X(fake_x), real_x, real_y, rec_x, rec_y,
                                        idt_x, idt_y, args.lambda_cyc, args.lambda_idt)
    opt_G.zero_grad()
    loss_G.backward()
    opt_G.step()
    D_X.requires_grad_(True)  # learners again for step (3)
    D_Y.requires_grad_(True)
    return fake_x, fake_y, parts


def reference_discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y, real_x, real_y, fake_x, fake_y):
    """Step (3) in the authors' order: per D, real and fake in separate calls, own backward."""
    opt_D.zero_grad()
    fake_y = pool_y.query(fake_y)  # detached by the pool: no gradient back into G
    loss_D_Y = lsgan_d_loss(D_Y(real_y), D_Y(fake_y))
    loss_D_Y.backward()
    fake_x = pool_x.query(fake_x)  # detached: none into F
    loss_D_X = lsgan_d_loss(D_X(real_x), D_X(fake_x))
    loss_D_X.backward()
    opt_D.step()
    return {"D_X": loss_D_X, "D_Y": loss_D_Y}


def make_models(args, device, reference=False):
    """G, F, D_X, D_Y and their two Adams as train.py builds them, from seed 0.

    reference=True builds them the way the authors' code does: nn.InstanceNorm2d in PyTorch's
    default memory layout, and plain (not fused) Adam. The same function, computed more slowly.
    """
    torch.manual_seed(0)
    G, F, D_X, D_Y, opt_G, opt_D = make_networks(args, device)
    if reference:
        for net in (G, F, D_X, D_Y):
            net.to(memory_format=torch.contiguous_format)
            for block in net.modules():
                for i, layer in enumerate(list(block.children())):
                    if isinstance(layer, InstanceNorm):  # always right after its convolution
                        block[i] = nn.InstanceNorm2d(block[i - 1].out_channels)
        opt_G = torch.optim.Adam([*G.parameters(), *F.parameters()], 2e-4, (0.5, 0.999))
        opt_D = torch.optim.Adam([*D_X.parameters(), *D_Y.parameters()], 2e-4, (0.5, 0.999))
    return G, F, D_X, D_Y, opt_G, opt_D


def authors_model(path, args, device, checkpoints_dir):
    """The CycleGANModel of the authors' code, from a checkout of their repository at `path`
    (github.com/junyanz/pytorch-CycleGAN-and-pix2pix), with the options of their cycle_gan
    training defaults. Only its models/ and util/ folders are imported (no torchvision needed).
    """
    if args.n_blocks not in (6, 9):
        raise SystemExit(f"error: --authors: their code has 6 or 9 blocks, not --n_blocks "
                         f"{args.n_blocks}")
    sys.path.insert(0, os.path.abspath(path))
    try:
        from models.cycle_gan_model import CycleGANModel
    except ImportError as e:
        raise SystemExit(f"error: --authors {path}: cannot import models/cycle_gan_model.py ({e});"
                         " give the folder of a checkout of junyanz/pytorch-CycleGAN-and-pix2pix")
    opt = argparse.Namespace(
        isTrain=True, model="cycle_gan", name="bench", checkpoints_dir=checkpoints_dir,
        gpu_ids=[device.index or 0] if device.type == "cuda" else [], input_nc=3, output_nc=3,
        ngf=args.ngf, ndf=args.ndf, netG=f"resnet_{args.n_blocks}blocks", netD="basic",
        n_layers_D=3, norm="instance", init_type="normal", init_gain=0.02, no_dropout=True,
        gan_mode="lsgan", pool_size=50, lr=2e-4, beta1=0.5, lambda_A=10.0, lambda_B=10.0,
        lambda_identity=0.5, direction="AtoB", batch_size=args.batch_size,
        load_size=args.load_size, crop_size=args.crop_size, preprocess="resize_and_crop",
        lr_policy="linear", epoch_count=1, n_epochs=100, n_epochs_decay=100, niter=100,
        niter_decay=100, lr_decay_iters=50, continue_train=False, epoch="latest", load_iter=0,
        verbose=False)  # niter, niter_decay: the names of n_epochs, n_epochs_decay before 2020
    torch.manual_seed(0)
    try:
        model = CycleGANModel(opt)
        model.setup(opt)
    except Exception as e:
        raise SystemExit(f"error: --authors {path}: their CycleGANModel did not build with "
                         f"their default options ({type(e).__name__}: {e})")
    return model


def count_flops(args, device):
    """FLOPs of one training iteration, from the shapes of every convolution it runs.

    A convolution's forward costs 2 * MACs; its backward costs 2 * MACs for the input's gradient
    when that input needs one, and 2 * MACs for the weights' when they learn. Norms, activations,
    losses and Adam are left out (a few percent at most).
    """
    G, F, D_X, D_Y, opt_G, opt_D = make_models(args, device, reference=True)
    total = [0]

    def hook(m, inputs, out):
        if isinstance(m, torch.nn.ConvTranspose2d):
            macs = inputs[0].numel() * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
        else:
            macs = out.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        total[0] += 2 * macs * (1 + inputs[0].requires_grad + m.weight.requires_grad)

    handles = [m.register_forward_hook(hook) for net in (G, F, D_X, D_Y) for m in net.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    real_x, real_y = (torch.zeros(args.batch_size, 3, args.crop_size, args.crop_size,
                                  device=device) for _ in "xy")
    fake_x, fake_y, _ = reference_generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args)
    reference_discriminator_step(D_X, D_Y, opt_D, ImagePool(0), ImagePool(0), real_x, real_y,
                                 fake_x, fake_y)
    for h in handles:
        h.remove()
    return total[0]


def matmul_rate(device, dtype=torch.float32, n=2048, reps=5):
    """The machine's measured FLOP/s on a square n x n matrix product, best of `reps`."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in "ab")
    best = float("inf")
    for _ in range(reps + 1):
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_dataset(folder, n=8, size=256, seed=0):
    """A stand-in dataset of n random-noise JPEGs per domain (decoding costs like a photo's)."""
    rng = np.random.default_rng(seed)
    for sub in ("trainA", "trainB"):
        os.makedirs(os.path.join(folder, sub))
        for i in range(n):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, sub, f"{i}.jpg"), quality=90)
    return folder


def pipeline_rate(dataset, num_workers, n_items):
    """Images decoded and augmented per second: in this process (one worker), or a DataLoader."""
    order = [i % len(dataset) for i in range(n_items)]
    if num_workers == 0:
        start = time.perf_counter()
        for i in order:
            dataset[i]
        return 2 * n_items / (time.perf_counter() - start)  # two images (x and y) per item
    loader = torch.utils.data.DataLoader(dataset, 1, sampler=order, num_workers=num_workers,
                                         prefetch_factor=4)
    batches = iter(loader)
    next(batches)  # the workers have started
    start = time.perf_counter()
    for _ in batches:
        pass
    return 2 * (n_items - 1) / (time.perf_counter() - start)


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "CPU"
    return f"{model} ({os.cpu_count()} cores)"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--reference", action="store_true", help="time a plain step as the authors' code computes "
      "it: six generator calls, separate D calls, nn.InstanceNorm2d, default layout, plain Adam")
    a("--authors", metavar="PATH", default=None, help="time the authors' own training step, from "
      "a checkout of github.com/junyanz/pytorch-CycleGAN-and-pix2pix at PATH")
    a("--crop_size", type=int, default=128)
    a("--load_size", type=int, default=None, help="default: crop_size * 286 / 256")
    a("--n_blocks", type=int, default=9)
    a("--ngf", type=int, default=64)
    a("--ndf", type=int, default=64)
    a("--batch_size", type=int, default=1)
    a("--iters", type=int, default=6, help="timed iterations, after --warmup")
    a("--warmup", type=int, default=2)
    a("--cuda", action="store_true")
    a("--device", default=None)
    a("--amp", action="store_true", help="as train.py --amp")
    a("--compile", action="store_true", help="as train.py --compile")
    a("--dataroot", default=None, help="real images (trainA/, trainB/); default: random JPEGs")
    a("--num_workers", type=int, default=min(4, os.cpu_count() or 1))
    a("--pipeline_items", type=int, default=40, help="items per data pipeline measurement; 0: skip")
    args = p.parse_args(argv)
    if (args.reference or args.authors) and (args.amp or args.compile):
        p.error("--reference and --authors time plain fp32 steps; --amp and --compile apply to "
                "train.py's")
    if args.reference and args.authors:
        p.error("--reference and --authors are two different steps: time one at a time")
    args.load_size = args.load_size or args.crop_size * 286 // 256
    args.lambda_cyc, args.lambda_idt, args.lambda_gan, args.cycle = 10.0, 0.5, 1.0, "both"
    args.lr, args.beta1 = 2e-4, 0.5  # train.py's defaults
    return args


def main(argv=None):
    args = parse_args(argv)
    device = pick_device(args)
    torch.backends.cudnn.benchmark = True  # as train.py: same sizes every step
    mode = ("reference (the authors' computation)" if args.reference else
            f"the authors' code in {args.authors}" if args.authors else "train.py step")
    print(f"{mode}: crop {args.crop_size}, {args.n_blocks} blocks, batch {args.batch_size}, "
          f"{'amp ' + str(amp_dtype(device)) if args.amp else 'fp32'}"
          f"{', compile' if args.compile else ''} on {device_name(device)}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    tmp = tempfile.TemporaryDirectory()
    root = args.dataroot or random_dataset(tmp.name)
    dataset = UnpairedDataset(root, "train", args.load_size, args.crop_size)

    pool_x, pool_y = ImagePool(50, 0), ImagePool(50, 1)
    scaler = (torch.amp.GradScaler(device.type)
              if args.amp and amp_dtype(device) == torch.float16 else None)
    if args.authors:  # their step is one call: its time is all counted as G's step
        model = authors_model(args.authors, args, device, tmp.name)

        def g_step(real_x, real_y):
            model.set_input({"A": real_x, "B": real_y, "A_paths": [""], "B_paths": [""]})
            model.optimize_parameters()
            return model.get_current_losses()

        def d_step(losses):
            return list(losses.values())
    else:
        G, F, D_X, D_Y, opt_G, opt_D = make_models(args, device, args.reference)
        for net in (G, F, D_X, D_Y) if args.compile else ():
            net.compile()

        def g_step(real_x, real_y):
            if args.reference:
                step = reference_generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args)
            else:
                step = generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args, scaler)
            return real_x, real_y, *step

        def d_step(state):
            real_x, real_y, fake_x, fake_y, parts = state
            if args.reference:
                parts.update(reference_discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y,
                                                          real_x, real_y, fake_x, fake_y))
            else:
                parts.update(discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y, real_x, real_y,
                                                fake_x, fake_y, args.amp, scaler))
            return torch.stack([v.float() for v in parts.values()]).tolist()  # as train.py's log

    # train.py's layout, channels-last; the reference and the authors' code use the default
    layout = torch.contiguous_format if args.reference or args.authors else torch.channels_last
    n_iters = args.warmup + args.iters
    order = [i % len(dataset) for i in range(n_iters * args.batch_size)]
    loader = torch.utils.data.DataLoader(dataset, args.batch_size, sampler=order,
                                         num_workers=args.num_workers,
                                         pin_memory=device.type == "cuda")
    batches = iter(loader)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []  # (data, generator step, discriminator step) per iteration
    for i in range(n_iters):
        t0 = time.perf_counter()
        real_x, real_y = next(batches)
        real_x = real_x.to(device, non_blocking=True, memory_format=layout)
        real_y = real_y.to(device, non_blocking=True, memory_format=layout)
        sync(device)
        t1 = time.perf_counter()
        state = g_step(real_x, real_y)
        sync(device)
        t2 = time.perf_counter()
        losses = d_step(state)
        t3 = time.perf_counter()
        times.append((t1 - t0, t2 - t1, t3 - t2))
        print(f"iter {i + 1}/{n_iters}{' (warm-up)' if i < args.warmup else ''}: "
              f"{t3 - t0:.3f} s (data {t1 - t0:.3f}, G step {t2 - t1:.3f}, D step {t3 - t2:.3f})"
              f" | losses {' '.join(f'{v:.4f}' for v in losses)}", flush=True)
    del batches, loader

    timed = times[args.warmup:]
    per_iter = statistics.median(sum(t) for t in timed)
    data_s, g_s, d_s = (statistics.median(t[k] for t in timed) for k in range(3))
    if device.type == "cuda":
        memory = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (max allocated)"
    else:
        memory = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (peak RSS)"
    flops = count_flops(args, device)
    rate = matmul_rate(device, amp_dtype(device) if args.amp else torch.float32)
    print(f"median {per_iter:.3f} s/iter (min {min(sum(t) for t in timed):.3f}, "
          f"{len(timed)} timed), {2 * args.batch_size / per_iter:.2f} images/s (x and y)")
    print(f"split (medians): data {data_s:.3f} s, G step {g_s:.3f} s, D step {d_s:.3f} s"
          + (" (the authors' step is one call: G's and D's steps both count as G's)"
             if args.authors else ""))
    print(f"peak memory: {memory}")
    print(f"FLOPs per iteration: {flops / 1e9:.1f} GFLOP (convolutions); achieved "
          f"{flops / per_iter / 1e9:.0f} GFLOP/s; matmul 2048^3 "
          f"{'in ' + str(amp_dtype(device)) if args.amp else 'fp32'}: {rate / 1e9:.0f} GFLOP/s "
          f"(so the floor is about {flops / rate:.2f} s/iter)")
    if args.pipeline_items:
        data = UnpairedDataset(root, "train", 286, 256)  # the paper's 286 -> 256 jitter
        one = pipeline_rate(data, 0, args.pipeline_items)
        many = pipeline_rate(data, args.num_workers, args.pipeline_items)
        print(f"data pipeline (load 286, crop 256, {'random JPEGs' if not args.dataroot else root}"
              f"): {one:.0f} images/s in one worker, {many:.0f} images/s with "
              f"{args.num_workers} workers on {os.cpu_count()} CPU cores")
    tmp.cleanup()
    print(f"median_s_per_iter={per_iter:.4f}")


if __name__ == "__main__":
    main()
