"""Not the paper: how fast one training iteration runs: seconds per iteration, the split between the
copy to the device, generator step and discriminator step, the data loader's wait, peak memory,
the FLOPs of one iteration next to the machine's matmul rate, the time per kind of layer and the
convolution limit (the step's time if every convolution ran at the best rate measured), and the
data pipeline's own speed.

    python bench.py --crop_size 128 --n_blocks 9 --iters 6               # train.py's step
    python bench.py --crop_size 128 --n_blocks 9 --iters 6 --reference   # and ours as theirs
    python bench.py --crop_size 128 --n_blocks 9 --iters 6 --authors ../pytorch-CycleGAN-and-pix2pix
With --reference or --authors the steps take turns on the same batches in one process, so a busy
machine slows them alike. The last line is machine-readable: median_s_per_iter=X (train.py's).
"""
import argparse
import copy
import math
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

from cyclegan import InstanceNorm, TransposedConv
from data import ImagePool, UnpairedDataset
from distributed import pick_device
from losses import generator_objective, lsgan_d_loss
from run import native_bfloat16_flags
from train import amp_dtype, discriminator_step, generator_step, make_networks


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

    reference=True builds them the way the authors' code does: nn.InstanceNorm2d and
    nn.ConvTranspose2d in PyTorch's default memory layout, and plain (not fused) Adam. The same
    function, computed more slowly.
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
                    elif isinstance(layer, TransposedConv):  # PyTorch's, the bias inside
                        block[i] = nn.ConvTranspose2d(
                            layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                            layer.padding, layer.output_padding).to(device)
                        block[i].load_state_dict(layer.state_dict())
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
        gpu_ids=[device.index or 0] if device.type == "cuda" else [],  # their code until 2025
        device=device,  # since their commit 2a7afba (2025), where DDP replaced --gpu_ids
        input_nc=3, output_nc=3,
        ngf=args.ngf, ndf=args.ndf, netG=f"resnet_{args.n_blocks}blocks", netD="basic",
        n_layers_D=3, norm="instance", init_type="normal", init_gain=0.02, no_dropout=True,
        gan_mode="lsgan", pool_size=50, lr=2e-4, beta1=0.5, lambda_A=10.0, lambda_B=10.0,
        lambda_identity=0.5, direction="AtoB", batch_size=args.batch_size,
        load_size=args.load_size, crop_size=args.crop_size, preprocess="resize_and_crop",
        lr_policy="linear", epoch_count=1, n_epochs=100, n_epochs_decay=100, niter=100,
        niter_decay=100, lr_decay_iters=50, continue_train=False, epoch="latest", load_iter=0,
        verbose=False, use_wandb=False, no_html=True, display_winsize=256)
    # niter, niter_decay: the names of n_epochs, n_epochs_decay before 2020
    torch.manual_seed(0)
    try:
        model = CycleGANModel(opt)
        model.setup(opt)
    except Exception as e:
        raise SystemExit(f"error: --authors {path}: their CycleGANModel did not build with "
                         f"their default options ({type(e).__name__}: {e})")
    return model


def layer_kinds(generators, discriminators):
    """Each layer of the four networks with the kind the per-layer table counts it under."""
    kinds = {}
    for prefix, nets in (("", generators), ("D: ", discriminators)):
        for net in nets:
            convs = [m for m in net.modules() if type(m) is nn.Conv2d]
            for m in net.modules():
                if isinstance(m, nn.ConvTranspose2d):
                    kind = "u128, u64: 3x3 transposed convs"
                elif isinstance(m, nn.Conv2d) and prefix:
                    kind = ("C64: first 4x4 conv (3 channels in)" if m is convs[0] else
                            "last 4x4 conv (1 channel out)" if m is convs[-1] else
                            "C128, C256, C512: 4x4 convs")
                elif isinstance(m, nn.Conv2d):
                    kind = ("c7s1-64: 7x7 conv (3 channels in)" if m is convs[0] else
                            "c7s1-3: 7x7 conv (3 channels out)" if m is convs[-1] else
                            "d128, d256: 3x3 stride-2 convs" if m.stride[0] == 2 else
                            "R256: 3x3 convs of the residual blocks")
                elif isinstance(m, (InstanceNorm, nn.InstanceNorm2d)):
                    kind = "instance norm"
                elif isinstance(m, nn.ReflectionPad2d):  # and ReflectionPad
                    kind = "reflection padding"
                elif isinstance(m, (nn.ReLU, nn.LeakyReLU, nn.Tanh)):
                    kind = {nn.ReLU: "ReLU", nn.LeakyReLU: "LeakyReLU(0.2)",
                            nn.Tanh: "tanh"}[type(m)]
                else:
                    continue
                kinds[m] = prefix + kind
    return kinds


def record_calls(kinds, step):
    """The layer calls one run of `step()` makes: {(kind, layer, input shape and layout, input
    needs grad, weights need grad): [number of calls, output shape]}, in the order of first use."""
    calls = {}

    def hook(m, inputs, output):
        x = inputs[0]
        channels_last = x.dim() == 4 and x.shape[1] > 1 and x.is_contiguous(
            memory_format=torch.channels_last)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        key = (kinds[m], m, tuple(x.shape), layout, x.requires_grad,
               any(p.requires_grad for p in m.parameters()))
        calls.setdefault(key, [0, tuple(output.shape)])[0] += 1

    handles = [m.register_forward_hook(hook) for m in kinds]
    try:
        step()
    finally:
        for h in handles:
            h.remove()
    return calls


def conv_flops(key, y_shape):
    """FLOPs of one call of a convolution, forward and backward (0, 0 for other layers).

    The forward costs 2 * MACs; the backward 2 * MACs for the input's gradient when the input
    needs one, and 2 * MACs for the weights' when they learn.
    """
    _, m, x_shape, _, input_grad, weight_grad = key
    if not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return 0, 0
    taps = m.kernel_size[0] * m.kernel_size[1]
    if isinstance(m, nn.ConvTranspose2d):  # each input pixel spreads over k x k outputs
        macs = math.prod(x_shape) * m.out_channels * taps // m.groups
    else:  # each output pixel gathers k x k inputs
        macs = math.prod(y_shape) * m.in_channels * taps // m.groups
    return 2 * macs, 2 * macs * (input_grad + weight_grad)


def time_layer(key, device, amp, reps=3):
    """Median seconds of one call of a layer alone: forward, and backward."""
    _, m, shape, layout, input_grad, weight_grad = key
    if getattr(m, "inplace", False):  # an in-place activation alone would overwrite a leaf
        m = copy.copy(m)
        m.inplace = False
    x = torch.randn(shape, device=device).contiguous(memory_format=layout)
    x.requires_grad_(input_grad)
    wrt = ([x] if input_grad else []) + ([p for p in m.parameters()] if weight_grad else [])
    forward, backward = [], []
    for i in range(reps + 1):  # the first call is a warm-up
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, amp_dtype(device), enabled=amp):
            y = m(x)
        sync(device)
        t1 = time.perf_counter()
        if wrt:
            torch.autograd.grad(y, wrt, torch.ones_like(y))
            sync(device)
        if i:
            forward.append(t1 - t0)
            backward.append(time.perf_counter() - t1)
    return statistics.median(forward), statistics.median(backward)


def layer_table(calls, device, amp, step_s):
    """Lines of the per-layer-kind table, and the convolution limit: the time the step's
    convolutions would take if each ran at the best rate a kind of convolution reached here."""
    rows = {}  # kind -> [calls, forward s, backward s, forward FLOPs, backward FLOPs]
    for key, (n, y_shape) in calls.items():
        forward, backward = time_layer(key, device, amp)
        ffwd, fbwd = conv_flops(key, y_shape)
        row = rows.setdefault(key[0], [0, 0.0, 0.0, 0, 0])
        for i, v in enumerate((1, forward, backward, ffwd, fbwd)):
            row[i] += n * v
    lines = [f"{'layer kind (each timed alone on the shapes of the step)':58s} calls "
             f"forward ms backward ms  GFLOP GFLOP/s  of step"]
    for kind, (n, fwd, bwd, ffwd, fbwd) in rows.items():
        rate = f"{(ffwd + fbwd) / (fwd + bwd) / 1e9:7.0f}" if ffwd else ""
        lines.append(f"{kind:58s} {n:5d} {fwd * 1e3:10.1f} {bwd * 1e3:11.1f} "
                     f"{(ffwd + fbwd) / 1e9:6.1f} {rate:>7s} {(fwd + bwd) / step_s:8.0%}")
    layers_s = sum(fwd + bwd for _, fwd, bwd, _, _ in rows.values())
    lines.append(f"{'the rest: losses, residual sums, cat and split, Adam':58s} {'':5s} "
                 f"{'':10s} {'':11s} {'':6s} {'':7s} {1 - layers_s / step_s:8.0%}")
    flops = sum(f + b for _, _, _, f, b in rows.values())
    # the best rate among the kinds that do at least 5% of the work: a tiny layer's timing is noise
    convs = {k: (f + b) / (fwd + bwd) for k, (_, fwd, bwd, f, b) in rows.items()
             if f + b >= 0.05 * flops}
    best = max(convs, key=convs.get)
    limit = flops / convs[best]
    lines.append(f"convolution limit: {flops / 1e9:.1f} GFLOP at the best convolution rate "
                 f"measured here ({convs[best] / 1e9:.0f} GFLOP/s, {best}) take {limit:.3f} s; "
                 f"the step takes {step_s:.3f} s, so it runs at {limit / step_s:.0%} of the limit")
    return lines


def step_flops(calls):
    """FLOPs of the convolutions in the recorded calls of one iteration."""
    return sum(n * sum(conv_flops(key, y_shape)) for key, (n, y_shape) in calls.items())


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
    return f"{model} ({os.cpu_count()} cores; {native_bfloat16()})"


def native_bfloat16(flags=None):
    """bench.py's first line: whether this CPU computes in bfloat16 natively (AVX-512 BF16, AMX),
    where --amp can pay; without them bfloat16 is converted to float32 and back, and --amp is
    mostly slower. flags: the CPU's feature flags, read from /proc/cpuinfo if not given."""
    have = native_bfloat16_flags(flags)
    if have is None:
        return "bfloat16 support unknown"
    return ("native bfloat16: " + ", ".join(have)) if have else "no native bfloat16"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--reference", action="store_true", help="also time, taking turns with train.py's step, "
      "a plain step as the authors' code computes it: six generator calls, separate D calls, "
      "nn.InstanceNorm2d, default layout, plain Adam (fp32)")
    a("--authors", metavar="PATH", default=None, help="also time, taking turns with train.py's "
      "step, the authors' own training step (fp32), from their models/ and util/ at PATH")
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
    a("--also_fp32", action="store_true", help="with --amp: also time train.py's fp32 step, "
      "taking turns on the same batches")
    a("--compile", action="store_true", help="as train.py --compile")
    a("--dataroot", default=None, help="real images (trainA/, trainB/); default: random JPEGs")
    a("--num_workers", type=int, default=min(4, os.cpu_count() or 1))
    a("--pipeline_items", type=int, default=40, help="items per data pipeline measurement; 0: skip")
    a("--layers", type=int, default=1, choices=[0, 1], help="1: time each kind of layer alone and "
      "print the table and the convolution limit; 0: skip")
    args = p.parse_args(argv)
    args.load_size = args.load_size or args.crop_size * 286 // 256
    args.lambda_cyc, args.lambda_idt, args.lambda_gan, args.cycle = 10.0, 0.5, 1.0, "both"
    args.lr, args.beta1 = 2e-4, 0.5  # train.py's defaults
    return args


def train_py_steps(args, device, reference, pool_x, pool_y, scaler):
    """(networks, G's step, D's step) of train.py, or of the reference computed as the authors."""
    nets = G, F, D_X, D_Y, opt_G, opt_D = make_models(args, device, reference)

    def g_step(real_x, real_y):
        if reference:
            step = reference_generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args)
        else:
            step = generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args, scaler)
        return real_x, real_y, *step

    def d_step(state):
        real_x, real_y, fake_x, fake_y, parts = state
        if reference:
            parts.update(reference_discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y,
                                                      real_x, real_y, fake_x, fake_y))
        else:
            parts.update(discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y, real_x, real_y,
                                            fake_x, fake_y, args.amp, scaler))
        return torch.stack([v.float() for v in parts.values()]).tolist()  # as train.py's log
    return nets[:4], g_step, d_step


def authors_steps(args, device, checkpoints_dir):
    """(step, no-op) of the authors' CycleGANModel: their step is one call."""
    model = authors_model(args.authors, args, device, checkpoints_dir)

    def g_step(real_x, real_y):
        model.set_input({"A": real_x, "B": real_y, "A_paths": [""], "B_paths": [""]})
        model.optimize_parameters()
        return model.get_current_losses()

    def d_step(losses):
        return list(losses.values())
    return g_step, d_step


def main(argv=None):
    args = parse_args(argv)
    device = pick_device(args)
    torch.backends.cudnn.benchmark = True  # as train.py: same sizes every step
    print(f"crop {args.crop_size}, {args.n_blocks} blocks, batch {args.batch_size} on "
          f"{device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads",
          flush=True)
    tmp = tempfile.TemporaryDirectory()
    root = args.dataroot or random_dataset(tmp.name)
    dataset = UnpairedDataset(root, "train", args.load_size, args.crop_size)
    scaler = (torch.amp.GradScaler(device.type)
              if args.amp and amp_dtype(device) == torch.float16 else None)
    # The steps to time, taking turns on the same batches: train.py's in its channels-last layout;
    # the reference and the authors' code in PyTorch's default layout, fp32.
    ours = (f"train.py {'amp ' + str(amp_dtype(device)) if args.amp else 'fp32'}"
            f"{' compile' if args.compile else ''}")
    nets, g_step, d_step = train_py_steps(args, device, False, ImagePool(50, 0), ImagePool(50, 1),
                                          scaler)
    steps = {ours: (g_step, d_step, torch.channels_last)}
    for net in nets if args.compile else ():
        net.compile()
    if args.amp and args.also_fp32:
        fp32 = argparse.Namespace(**{**vars(args), "amp": False})
        steps["train.py fp32"] = (*train_py_steps(fp32, device, False, ImagePool(50, 0),
                                                  ImagePool(50, 1), None)[1:], torch.channels_last)
    if args.reference:
        steps["reference (ours computed as the authors do)"] = (*train_py_steps(
            args, device, True, ImagePool(50, 0), ImagePool(50, 1), None)[1:],
            torch.contiguous_format)
    if args.authors:
        steps[f"the authors' code ({args.authors})"] = (*authors_steps(args, device, tmp.name),
                                                        torch.contiguous_format)
    # The layers train.py's step calls, recorded in one step of a copy (the same weights, seed 0),
    # so that the timed steps all start from the same weights
    nets, g_step, d_step = train_py_steps(args, device, False, ImagePool(50, 0), ImagePool(50, 1),
                                          scaler)
    real_x, real_y = (torch.rand(args.batch_size, 3, args.crop_size, args.crop_size,
                                 device=device).mul(2).sub(1)
                      .contiguous(memory_format=torch.channels_last) for _ in "xy")
    calls = record_calls(layer_kinds(nets[:2], nets[2:4]), lambda: d_step(g_step(real_x, real_y)))

    n_iters = args.warmup + args.iters
    order = [i % len(dataset) for i in range(n_iters * args.batch_size)]
    loader = torch.utils.data.DataLoader(dataset, args.batch_size, sampler=order,
                                         num_workers=args.num_workers,
                                         pin_memory=device.type == "cuda")
    batches = iter(loader)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = {name: [] for name in steps}  # (data, G's step, D's step) per iteration
    waits = []  # for the data loader's next batch, shared by the steps
    names = list(steps)
    for i in range(n_iters):
        t0 = time.perf_counter()
        batch = next(batches)
        waits.append(time.perf_counter() - t0)
        for name in names[i % len(names):] + names[:i % len(names)]:  # each goes first in turn
            g_step, d_step, layout = steps[name]
            t0 = time.perf_counter()
            real_x, real_y = (b.to(device, non_blocking=True, memory_format=layout) for b in batch)
            sync(device)
            t1 = time.perf_counter()
            state = g_step(real_x, real_y)
            sync(device)
            t2 = time.perf_counter()
            losses = d_step(state)
            t3 = time.perf_counter()
            times[name].append((t1 - t0, t2 - t1, t3 - t2))
            print(f"iter {i + 1}/{n_iters}{' (warm-up)' if i < args.warmup else ''} {name}: "
                  f"{t3 - t0:.3f} s (to device {t1 - t0:.3f}, G step {t2 - t1:.3f}, D step "
                  f"{t3 - t2:.3f}) | losses {' '.join(f'{v:.4f}' for v in losses)}", flush=True)
    del batches, loader

    medians = {}
    for name, ts in times.items():
        timed = ts[args.warmup:]
        medians[name] = statistics.median(sum(t) for t in timed)
        data_s, g_s, d_s = (statistics.median(t[k] for t in timed) for k in range(3))
        print(f"{name}: median {medians[name]:.3f} s/iter (min {min(sum(t) for t in timed):.3f}, "
              f"{len(timed)} timed), {2 * args.batch_size / medians[name]:.2f} images/s; "
              f"to device {data_s:.3f} s, G step {g_s:.3f} s, D step {d_s:.3f} s"
              + (" (one call: both count as G's)" if name.startswith("the authors'") else ""))
    print(f"waiting for the data loader: median {statistics.median(waits[args.warmup:]):.3f} s "
          f"per batch, once for all steps (not in the s/iter above)")
    per_iter = medians[ours]
    for name in names[1:]:
        saved = 1 - per_iter / medians[name]
        print(f"train.py's step vs {name}: {medians[name] / per_iter:.2f}x the speed "
              f"({abs(saved):.0%} {'less' if saved >= 0 else 'more'} time), taking turns")
    if device.type == "cuda":
        memory = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (max allocated)"
    else:
        memory = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (peak RSS)"
    print(f"peak memory: {memory}" + (f", all {len(steps)} steps' networks together"
                                      if len(steps) > 1 else ""))
    rate = matmul_rate(device, amp_dtype(device) if args.amp else torch.float32)
    flops = step_flops(calls)
    print(f"FLOPs per iteration: {flops / 1e9:.1f} GFLOP (convolutions); train.py achieves "
          f"{flops / per_iter / 1e9:.0f} GFLOP/s; matmul 2048^3 "
          f"{'in ' + str(amp_dtype(device)) if args.amp else 'fp32'}: {rate / 1e9:.0f} GFLOP/s "
          f"(so the floor is about {flops / rate:.2f} s/iter)")
    if args.layers:
        print("\n".join(layer_table(calls, device, args.amp, per_iter)))
    if args.pipeline_items:
        # resize to 286, then a random 256 crop: the jitter of the authors' code, not the paper's
        data = UnpairedDataset(root, "train", 286, 256)
        one = pipeline_rate(data, 0, args.pipeline_items)
        many = pipeline_rate(data, args.num_workers, args.pipeline_items)
        print(f"data pipeline (load 286, crop 256, {'random JPEGs' if not args.dataroot else root}"
              f"): {one:.0f} images/s in one worker, {many:.0f} images/s with "
              f"{args.num_workers} workers on {os.cpu_count()} CPU cores")
    tmp.cleanup()
    print(f"median_s_per_iter={per_iter:.4f}"
          + "".join(f" {'fp32' if n == 'train.py fp32' else n.split()[0].replace('the', 'authors')}"
                    f"_s_per_iter={medians[n]:.4f}" for n in names[1:]))


if __name__ == "__main__":
    main()
