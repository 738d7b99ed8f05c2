"""Train CycleGAN (arXiv:1703.10593v7): the full objective of Eq. 3 with the settings of Sec. 4
and appendix 7.1, from the command line.

One iteration: (1) read real_x, real_y; (2) generator step, G and F on one Adam; (3) discriminator
step, D_X and D_Y on one Adam, against fakes from the history pool; (4) a log line; (5) each
epoch: learning-rate decay, a sample grid, a checkpoint. `python train.py --help` lists the flags.
"""
import argparse
import math
import os
import signal
import sys

import torch

import checkpoints
import distributed
import report
from cyclegan import Discriminator, Generator, init_weights
from data import ImagePool, UnpairedDataset, resolve_dataroot
from toy import is_toy
from evaluate import format_errors, ground_truth_errors, load_pairs
from losses import generator_objective, lsgan_d_loss


def linear_decay(epoch, n_epochs=100, n_epochs_decay=100):
    """Learning-rate multiplier for epoch 1, 2, ..., n_epochs + n_epochs_decay (appendix 7.1).

    The paper: "keep the same learning rate for the first 100 epochs and linearly decay the rate
    to zero over the next 100 epochs". Per epoch, that is 1.0 up to epoch n_epochs, then
    n_epochs_decay equal steps of 1 / (n_epochs_decay + 1): epoch 101 trains at 100/101 of the
    rate, epoch 200 at 1/101, and the line would reach zero at epoch 201, so every epoch still
    learns something.
    """
    return 1.0 - max(0, epoch - n_epochs) / (n_epochs_decay + 1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                usage="python train.py [flags] (--help lists them)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--dataroot", default="toy", help="folder with trainA/ (domain X) and trainB/ (domain Y), a "
      "dataset name, or toy: shapes in two styles, drawn into datasets/toy/ (toy.py)")
    a("--out", default=None, help="output folder (default runs/NAME, NAME from --dataroot)")
    a("--cuda", action="store_true", help="train on the GPU (fails if none is visible)")
    a("--device", default=None, help="a torch device by name, e.g. cuda:1 or cpu")
    a("--seed", type=int, default=0, help="seeds the weights, the data order and the pool")
    a("--resume", action="store_true", help="continue from OUT/latest.pt; --lr, --n_epochs and "
      "--n_epochs_decay may change (the schedule is recomputed for the new length)")
    a("--n_epochs", type=int, default=100, help="epochs at the initial rate (appendix 7.1)")
    a("--n_epochs_decay", type=int, default=100, help="epochs of linear decay to 0 (appendix 7.1)")
    a("--max_iters", type=int, default=None, help="stop (and save) after this many iterations")
    # Deviation: batches of more than 1 image are allowed; Sec. 4 trains with batch size 1.
    # Under torchrun --batch_size is the global batch, split among the processes.
    a("--batch_size", type=int, default=1, help="batch size 1 (Sec. 4); under torchrun the "
      "global batch, a multiple of the number of processes")
    a("--lr", type=float, default=2e-4, help="Adam learning rate (appendix 7.1)")
    a("--beta1", type=float, default=0.5, help="Adam beta1 (the authors' code; not in the paper)")
    a("--lambda_cyc", type=float, default=10.0, help="lambda in Eq. 3 (appendix 7.1)")
    # Deviation: identity loss on by default (authors' code); Sec. 5.2 uses it for painting->photo.
    a("--lambda_idt", type=float, default=0.5,
      help="identity loss weight, a fraction of lambda_cyc (Sec. 5.2, appendix 7.1); 0: off")
    a("--lambda_gan", type=float, default=1.0,
      help="weight of both GAN terms; 0 is 'cycle alone' of Table 4")
    a("--cycle", choices=["both", "forward", "backward"], default="both",
      help="which cycle terms of Eq. 2 to use (Table 4 ablation)")
    a("--pool_size", type=int, default=50, help="history of fakes for D (Sec. 4); 0: no pool")
    a("--load_size", type=int, default=286, help="images are resized to this square first")
    a("--crop_size", type=int, default=256, help="then cropped at random to this size")
    a("--n_blocks", type=int, default=9, help="residual blocks: 9 for 256px, 6 for 128px (Sec. 4)")
    a("--ngf", type=int, default=64, help="filters in the generator's first layer (appendix 7.2)")
    a("--ndf", type=int, default=64, help="filters in D's first layer (appendix 7.2)")
    a("--num_workers", type=int, default=min(4, os.cpu_count() or 1), help="data loading processes")
    a("--amp", action="store_true", help="opt-in: mixed precision, forward passes in bfloat16 "
      "(float16 with a gradient scaler on GPUs without bfloat16); faster on GPUs, not exact")
    a("--compile", action="store_true", help="opt-in: run the four networks through torch.compile "
      "(same function, fused kernels; slow first iterations while it compiles)")
    a("--print_every", type=int, default=100, help="iterations between log lines")
    a("--save_every", type=int, default=1000, help="iterations between saves of latest.pt")
    a("--save_epoch_freq", type=int, default=10, help="keep a checkpoint copy every N epochs")
    a("--n_samples", type=int, default=3, help="test images per domain in each sample grid")
    args = p.parse_args(argv)
    check_args(p, args)
    args.explicit = sorted({s.split("=")[0].lstrip("-") for s in (argv or sys.argv[1:])
                            if s.startswith("--")})
    return args


def check_args(p, args):
    """Refuse values that mean nothing, with the flag's name (argparse prints one line)."""
    for flag in ("n_epochs", "n_epochs_decay", "batch_size", "crop_size", "n_blocks", "ngf", "ndf",
                 "print_every", "save_every", "save_epoch_freq", "n_samples"):
        low = 0 if flag in ("n_epochs", "n_epochs_decay", "n_blocks") else 1
        if getattr(args, flag) < low:
            p.error(f"--{flag} must be at least {low}")
    if args.crop_size < 24:
        p.error(f"--crop_size {args.crop_size}: at least 24, or the discriminator's last layers "
                "have fewer than 2 positions to normalize")
    if args.crop_size % 4:
        p.error(f"--crop_size {args.crop_size}: a multiple of 4 (the generator halves it twice)")
    if args.load_size < args.crop_size:
        p.error(f"--load_size {args.load_size} is smaller than --crop_size {args.crop_size}")
    if args.n_epochs + args.n_epochs_decay < 1:
        p.error("--n_epochs + --n_epochs_decay must be at least 1")
    for flag in ("seed", "num_workers", "pool_size", "lambda_cyc", "lambda_idt", "lambda_gan"):
        if getattr(args, flag) < 0:
            p.error(f"--{flag} {getattr(args, flag)}: must not be negative")
    if not 0 <= args.seed < 2**32:  # numpy's generators take seeds below 2^32
        p.error(f"--seed {args.seed}: must be below 2^32")
    if not (math.isfinite(args.lr) and args.lr > 0):
        p.error(f"--lr {args.lr}: must be a positive number, e.g. 2e-4 (appendix 7.1)")
    if not 0 <= args.beta1 < 1:
        p.error(f"--beta1 {args.beta1}: Adam's beta1 lies in [0, 1), e.g. 0.5")
    if args.max_iters is not None and args.max_iters < 1:
        p.error(f"--max_iters {args.max_iters}: must be at least 1")


# The toy domains' settings, for flags not given: not the paper's, but small enough that plain
# `python train.py` learns the toy on a 2-core CPU in about a minute: 8 filters (a step in half the
# time of 16) at 3 times the paper's rate (6e-4) for 4 + 3 epochs (README: errors and times of 5
# seeds).
TOY_DEFAULTS = {"load_size": 32, "crop_size": 32, "ngf": 8, "n_blocks": 3, "ndf": 8,
                "batch_size": 4, "n_epochs": 4, "n_epochs_decay": 3, "lr": 6e-4, "num_workers": 0,
                "print_every": 50, "save_epoch_freq": 3, "n_samples": 4}

# Flags that may change when a run is resumed; the others must stay as the checkpoint has them.
CHANGEABLE_ON_RESUME = ("dataroot", "max_iters", "print_every", "save_every", "save_epoch_freq",
                        "n_epochs", "n_epochs_decay", "lr", "n_samples", "amp", "compile")


def amp_dtype(device):
    """--amp's half precision: bfloat16 where the device has it (CPUs, most GPUs), else float16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def make_networks(args, device):
    """G, F, D_X, D_Y with weights from N(0, 0.02) (appendix 7.1), and an Adam for each pair."""
    G = init_weights(Generator(ngf=args.ngf, n_blocks=args.n_blocks))  # X -> Y
    F = init_weights(Generator(ngf=args.ngf, n_blocks=args.n_blocks))  # Y -> X
    D_X = init_weights(Discriminator(ndf=args.ndf))  # tells real x from F(y)
    D_Y = init_weights(Discriminator(ndf=args.ndf))  # tells real y from G(x)
    for net in (G, F, D_X, D_Y):  # channels-last: each pixel's channels side by side in memory,
        net.to(device, memory_format=torch.channels_last)  # as fast convolutions read (bench.py)
    betas = (args.beta1, 0.999)  # Adam (Sec. 4); beta1 = 0.5 from the authors' code
    fused = device.type in ("cpu", "cuda")  # the same Adam update in one pass over memory, not ~7
    opt_G = torch.optim.Adam([*G.parameters(), *F.parameters()], args.lr, betas, fused=fused)
    opt_D = torch.optim.Adam([*D_X.parameters(), *D_Y.parameters()], args.lr, betas, fused=fused)
    return G, F, D_X, D_Y, opt_G, opt_D


def generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args, scaler=None):
    """Step (2): one Adam step on G and F for Eq. 3 plus the identity loss (Sec. 5.2)."""
    # D_X, D_Y are judges here, not learners: no gradients for their weights (saves a backward).
    D_X.requires_grad_(False)
    D_Y.requires_grad_(False)
    n = [len(real_x), len(real_y)]
    with torch.autocast(real_x.device.type, amp_dtype(real_x.device), enabled=args.amp):
        if args.lambda_idt > 0:
            # Instance norm works per image, so one call on a batch of x and y gives exactly G(x)
            # and G(y): the same function as two calls, with fewer, larger calls (bench.py).
            fake_y, idt_y = G(torch.cat([real_x, real_y])).split(n)  # G(x); G(y) ~ y (Sec. 5.2)
            fake_x, idt_x = F(torch.cat([real_y, real_x])).split(n[::-1])  # F(y); F(x) ~ x
        else:
            fake_y, idt_y, fake_x, idt_x = G(real_x), None, F(real_y), None
        rec_x = F(fake_y)  # F(G(x)), forward cycle of Eq. 2
        rec_y = G(fake_x)  # G(F(y)), backward cycle of Eq. 2
        loss_G, parts = generator_objective(D_Y(fake_y), D_X(fake_x), real_x, real_y, rec_x,
                                            rec_y, idt_x, idt_y, args.lambda_cyc,
                                            args.lambda_idt, args.lambda_gan, args.cycle)
    opt_G.zero_grad(set_to_none=True)
    if scaler is None:
        loss_G.backward()
        opt_G.step()
    else:  # --amp in float16: scale the loss so that small gradients do not round to zero
        scaler.scale(loss_G).backward()
        scaler.step(opt_G)
        scaler.update()
    D_X.requires_grad_(True)
    D_Y.requires_grad_(True)
    return fake_x, fake_y, parts


def discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y, real_x, real_y, fake_x, fake_y,
                       amp=False, scaler=None):
    """Step (3): one Adam step on D_X and D_Y, real images against fakes from the pool (Sec. 4)."""
    fake_x = pool_x.query(fake_x)  # detached: D's loss must not reach back into F
    fake_y = pool_y.query(fake_y)  # detached: nor into G
    with torch.autocast(real_x.device.type, amp_dtype(real_x.device), enabled=amp):
        # One call per D on [real, fake]: instance norm and patch scores are per image, so the
        # scores are exactly D_X(x) and D_X(F(y)) of two calls.
        d_real_x, d_fake_x = D_X(torch.cat([real_x, fake_x])).split([len(real_x), len(fake_x)])
        d_real_y, d_fake_y = D_Y(torch.cat([real_y, fake_y])).split([len(real_y), len(fake_y)])
        loss_D_X = lsgan_d_loss(d_real_x, d_fake_x)  # halved inside, appendix 7.1
        loss_D_Y = lsgan_d_loss(d_real_y, d_fake_y)
    opt_D.zero_grad(set_to_none=True)
    if scaler is None:
        (loss_D_X + loss_D_Y).backward()
        opt_D.step()
    else:  # --amp in float16, as in generator_step
        scaler.scale(loss_D_X + loss_D_Y).backward()
        scaler.step(opt_D)
        scaler.update()
    return {"D_X": loss_D_X, "D_Y": loss_D_Y}


def main(argv=None):
    """The command line: train, and end any error as one line, `error: ...`, exit status 1."""
    args = parse_args(argv)
    world = distributed.World()  # one process, unless started by torchrun
    try:
        root, out, device = prepare(args, world)
        with checkpoints.FolderLock(out, world.is_main):  # one run per output folder
            world.barrier()
            status = train(args, world, root, out, device)
            world.barrier()  # every rank done (rank 0 saving last) before the group closes
            return status
    except (OSError, ValueError, distributed.Diverged) as e:
        raise SystemExit(f"error: {e}" if world.is_main else 1) from None
    finally:
        world.close()


def prepare(args, world):
    """The dataset folder (the toy drawn once, its defaults taken), the output folder, the
    device."""
    device = world.own_device(distributed.pick_device(args))
    world.start(device)
    torch.backends.cudnn.benchmark = True  # same sizes every step: let cuDNN pick kernels once
    root = resolve_dataroot(args.dataroot) if world.is_main else None  # draws the toy once
    world.barrier()
    root = root or resolve_dataroot(args.dataroot)
    if is_toy(root):
        toy = {k: v for k, v in TOY_DEFAULTS.items() if k not in args.explicit}
        vars(args).update(toy)
        args.load_size = max(args.load_size, args.crop_size)
        world.say("toy domains: flags not given take the toy's defaults, not the paper's: "
                  + " ".join(f"--{k} {v}" for k, v in toy.items()))
    return root, args.out or os.path.join("runs", os.path.basename(os.path.normpath(root))), device


def train(args, world, root, out, device):
    """The networks, pools and counters, new or from the checkpoint of --resume; then loop()."""
    ckpt = resume(args, world, out, device)
    world.check_batch(args.batch_size)
    world.say("settings: " + " ".join(f"--{k} {v}" for k, v in vars(args).items()
                                      if k != "explicit"))
    torch.manual_seed(args.seed)  # the same start on every rank
    nets = make_networks(args, device)  # G, F, D_X, D_Y, opt_G, opt_D
    pools = ImagePool(args.pool_size, args.seed), ImagePool(args.pool_size, args.seed + 1)
    at = {"epoch": 0, "iter": 0, "total_iters": 0}  # epochs done, iterations into the next
    if ckpt is not None:
        for name, obj in zip(("G", "F", "D_X", "D_Y", "opt_G", "opt_D"), nets):
            obj.load_state_dict(ckpt[name])
        pools[0].load_state_dict(ckpt["pool_x"], device)
        pools[1].load_state_dict(ckpt["pool_y"], device)
        torch.set_rng_state(ckpt["rng"].cpu())
        at = {k: ckpt[k] for k in at}
        world.say(f"resumed {out}/latest.pt: {at['epoch']} epochs and {at['iter']} iterations "
                  "done")
    for net in nets[:4] if args.compile else ():
        net.compile()  # in place: state_dict keys (checkpoints) stay the same
    return loop(args, world, device, root, out, nets, pools, at)


def resume(args, world, out, device):
    """The checkpoint of --resume (or None), its settings taken into args."""
    latest = os.path.join(out, "latest.pt")
    if world.restarted:  # torchrun --max-restarts started us again: go on from the last save
        args.resume = os.path.exists(latest)
    if not args.resume:
        if os.path.exists(latest):
            raise ValueError(f"{latest} exists: add --resume to continue that run, or pick "
                             "another --out")
        return None
    ckpt = checkpoints.load_latest(out, device)
    old = checkpoints.take_settings(args, ckpt, CHANGEABLE_ON_RESUME)
    if any(getattr(args, k) != old[k] for k in ("lr", "n_epochs", "n_epochs_decay")):
        done = ckpt["epoch"]  # the schedule is recomputed for the new settings; say what it does
        last = old["lr"] * linear_decay(max(done, 1), old["n_epochs"], old["n_epochs_decay"])
        world.say(f"schedule: --lr {args.lr:g}, {args.n_epochs} epochs constant, then "
                  f"{args.n_epochs_decay} decaying linearly: epoch {max(done, 1)} trained at "
                  f"{last:.3g}, epoch {done + 1} trains at "
                  f"{args.lr * linear_decay(done + 1, args.n_epochs, args.n_epochs_decay):.3g}")
    return ckpt


def loop(args, world, device, root, out, nets, pools, at):
    """Steps (1) to (5) for each epoch left; returns the exit status: 0, or 128 + a signal's."""
    G, F, D_X, D_Y = (world.wrap(net) for net in nets[:4])  # gradients averaged over ranks
    opt_G, opt_D = nets[4:]
    pool_x, pool_y = (distributed.SharedPool(pool, world) for pool in pools)
    scaler = (torch.amp.GradScaler(device.type)  # float16 needs loss scaling; bfloat16 does not
              if args.amp and amp_dtype(device) == torch.float16 else None)
    dataset = UnpairedDataset(root, "train", args.load_size, args.crop_size, args.seed)
    write = run_writer(args, world, root, out, nets, pools, at, device)
    n_total, per_epoch = args.n_epochs + args.n_epochs_decay, math.ceil(len(dataset) /
                                                                       args.batch_size)
    run_iters = min(args.max_iters or math.inf, n_total * per_epoch)
    world.say(f"{len(dataset.paths['X'])} images in X, {len(dataset.paths['Y'])} in Y "
              f"({dataset.layout}): "
              f"{per_epoch} iterations per epoch, {n_total} epochs; writing to {out}/")
    stop, stopping, start_iters = distributed.StopFlag(not world.is_main), False, at["total_iters"]
    while at["epoch"] < n_total and at["total_iters"] < run_iters and not stopping:
        epoch = at["epoch"] + 1
        lr = args.lr * linear_decay(epoch, args.n_epochs, args.n_epochs_decay)  # appendix 7.1
        for group in opt_G.param_groups + opt_D.param_groups:  # both optimizers, every epoch
            group["lr"] = lr
        dataset.epoch = epoch
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=world.batches(dataset.order(epoch), args.batch_size,
                                                 at["iter"]),
            num_workers=args.num_workers, worker_init_fn=distributed.ignore_signals_in_worker,
            pin_memory=device.type == "cuda")
        for real_x, real_y in loader:
            # (1) a batch of each domain (under torchrun, this rank's share of the batch)
            real_x = real_x.to(device, non_blocking=True, memory_format=torch.channels_last)
            real_y = real_y.to(device, non_blocking=True, memory_format=torch.channels_last)
            # (2) generators, then (3) discriminators on the fakes just made
            fake_x, fake_y, parts = generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args,
                                                   scaler)
            parts.update(discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y, real_x, real_y,
                                            fake_x, fake_y, args.amp, scaler))
            # the ranks agree on the losses, on NaN or inf in a loss or a weight, and on stopping
            values, finite, stopping = world.agree(parts, nets[:4], stop.stop)
            if not finite:
                raise ValueError(f"a loss or a weight became NaN or inf at epoch {epoch}, "
                                 f"iteration {at['iter'] + 1} ({values}); stopped without "
                                 f"saving it. {write.last_save()} Try a smaller --lr.")
            at["iter"] += 1
            at["total_iters"] += 1
            # (4) a log line
            write.log(values, epoch, n_total, per_epoch, lr, run_iters)
            if at["total_iters"] % args.save_every == 0:
                write.checkpoint()
            if stopping or at["total_iters"] >= run_iters:
                break
        if at["iter"] < per_epoch:  # stopped inside the epoch
            break
        # (5) end of epoch: samples, curves, gallery, checkpoints
        at["epoch"], at["iter"] = epoch, 0
        write.end_of_epoch(epoch, n_total)
    stop.restore()
    write.checkpoint()
    world.say(f"{'finished' if at['epoch'] >= n_total else 'stopped'} after "
              f"{at['total_iters'] - start_iters} iterations this run ({at['epoch']} epochs "
              f"done); {write.summary()}")
    return 128 + (stop.signum or signal.SIGINT) if stopping else 0


def run_writer(args, world, root, out, nets, pools, at, device):
    """What rank 0 writes (report.RunWriter), given the checkpoint's content and, on the toy,
    the ground-truth errors of G and F on its paired test images."""
    def state():  # one dict (STYLE.md), the same on every rank: check that it is
        world.check_same_weights(nets[:4])
        if not world.is_main:
            return None  # rank 0 alone writes it: the others need not gather it
        return {**dict(zip(("G", "F", "D_X", "D_Y", "opt_G", "opt_D"),
                           (obj.state_dict() for obj in nets))), **at,
                "pool_x": pools[0].state_dict(), "pool_y": pools[1].state_dict(),
                "rng": torch.get_rng_state(), "args": vars(args), "world_size": world.size}

    def toy_errors():  # a line for the log, and the numbers for the results page
        e = ground_truth_errors(nets[0], nets[1], *pairs)
        return (f"{len(pairs[0])} test pairs | {format_errors(e)}",
                {"L1 G(x) vs y": e["G"], "L1 F(y) vs x": e["F"]})

    pairs = load_pairs(root, args.crop_size, device) if is_toy(root) and world.is_main else None
    return report.RunWriter(out, args, world.is_main, state, at, nets[0], nets[1], root, device,
                            toy_errors if pairs is not None else None)


if __name__ == "__main__":
    sys.exit(main())
