"""Train CycleGAN (arXiv:1703.10593v7): the full objective of Eq. 3 with the settings of Sec. 4
and appendix 7.1.

Read the first part beside the paper: the networks and their two optimizers, the generator step,
the discriminator step, and the training loop: (1) a batch of each domain, (2) one Adam step on G
and F, (3) one Adam step on D_X and D_Y against fakes from the history pool, (4) a log line, (5) at
each epoch's end a sample grid and a checkpoint. The second part, after the line "Not the paper",
is the command line and the run's plumbing. `python train.py --help` lists the flags.
"""
import argparse
import math
import os
import sys

import torch

import checkpoints
import distributed
import toy
from cyclegan import Discriminator, Generator, init_weights
from data import ImagePool, resolve_dataroot
from losses import generator_objective, lsgan_d_loss
from run import Run, amp_hint, count


def linear_decay(epoch, n_epochs=100, n_epochs_decay=100):
    """Learning-rate multiplier for epoch 1, 2, ..., n_epochs + n_epochs_decay (appendix 7.1).

    The paper: "keep the same learning rate for the first 100 epochs and linearly decay the rate
    to zero over the next 100 epochs". Per epoch, that is 1.0 up to epoch n_epochs, then
    n_epochs_decay equal steps of 1 / (n_epochs_decay + 1): epoch 101 trains at 100/101 of the
    rate, epoch 200 at 1/101, and the line would reach zero at epoch 201, so every epoch still
    learns something.
    """
    return 1.0 - max(0, epoch - n_epochs) / (n_epochs_decay + 1)


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


def each(net, *batches):
    """[net(a), net(b), ...] in one call on the batches together. Instance norm and the patch
    scores are per image, so this is the same function as separate calls, in fewer, larger ones."""
    return net(torch.cat(batches)).split([len(b) for b in batches])


def update(optimizer, loss, scaler=None):
    """One Adam step down the gradient of loss: clear the last step's gradients, backpropagate,
    step. With --amp in float16, the loss is scaled so that small gradients do not round to 0."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args, scaler=None):
    """Step (2): one Adam step on G and F for Eq. 3 plus the identity loss (Sec. 5.2)."""
    # D_X, D_Y are judges here, not learners: no gradients for their weights (saves a backward).
    D_X.requires_grad_(False)
    D_Y.requires_grad_(False)
    with half_precision(args.amp, real_x.device):  # off by default: float32, as the paper
        if args.lambda_idt > 0:
            fake_y, idt_y = each(G, real_x, real_y)  # G(x); G(y) ~ y, the identity (Sec. 5.2)
            fake_x, idt_x = each(F, real_y, real_x)  # F(y); F(x) ~ x
        else:
            fake_y, idt_y = G(real_x), None
            fake_x, idt_x = F(real_y), None
        rec_x = F(fake_y)  # F(G(x)), forward cycle of Eq. 2
        rec_y = G(fake_x)  # G(F(y)), backward cycle of Eq. 2
        score_y, score_x = D_Y(fake_y).float(), D_X(fake_x).float()  # losses in float32 (--amp)
        loss_G, parts = generator_objective(score_y, score_x, real_x, real_y, rec_x, rec_y, idt_x,
                                            idt_y, args.lambda_cyc, args.lambda_idt,
                                            args.lambda_gan, args.cycle)
    update(opt_G, loss_G, scaler)
    D_X.requires_grad_(True)
    D_Y.requires_grad_(True)
    return fake_x, fake_y, parts


def discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y, real_x, real_y, fake_x, fake_y,
                       amp=False, scaler=None):
    """Step (3): one Adam step on D_X and D_Y, real images against fakes from the pool (Sec. 4)."""
    fake_x = pool_x.query(fake_x)  # detached: D's loss must not reach back into F
    fake_y = pool_y.query(fake_y)  # detached: nor into G
    with half_precision(amp, real_x.device):
        d_real_x, d_fake_x = each(D_X, real_x, fake_x)  # D_X(x), D_X(F(y))
        d_real_y, d_fake_y = each(D_Y, real_y, fake_y)  # D_Y(y), D_Y(G(x))
        loss_D_X = lsgan_d_loss(d_real_x.float(), d_fake_x.float())  # halved inside, app. 7.1
        loss_D_Y = lsgan_d_loss(d_real_y.float(), d_fake_y.float())  # float32 under --amp too
    update(opt_D, loss_D_X + loss_D_Y, scaler)
    return {"D_X": loss_D_X, "D_Y": loss_D_Y}


def train(args, networks, pools, run, world):
    """The training loop: steps (1) to (5) for each epoch left (Sec. 4, appendix 7.1). `run`
    holds what is not the paper; returns the exit status (0, or 128 + a stopping signal's)."""
    G, F, D_X, D_Y, opt_G, opt_D = networks
    # Under torchrun (not the paper): gradients averaged over the processes, one pool for all.
    G, F, D_X, D_Y = (world.wrap(net) for net in (G, F, D_X, D_Y))
    pool_x, pool_y = (distributed.SharedPool(pool, world) for pool in pools)
    float16 = args.amp and amp_dtype(run.device) == torch.float16  # bfloat16 needs no scaler
    scaler = torch.amp.GradScaler(run.device.type) if float16 else None
    for epoch in range(run.progress["epoch"] + 1, run.n_epochs + 1):
        lr = args.lr * linear_decay(epoch, args.n_epochs, args.n_epochs_decay)  # appendix 7.1
        for group in opt_G.param_groups + opt_D.param_groups:  # both optimizers, every epoch
            group["lr"] = lr
        for real_x, real_y in run.batches(epoch):  # (1) a batch of each domain
            # (2) generators, then (3) discriminators on the fakes just made
            fake_x, fake_y, losses = generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args,
                                                    scaler)
            losses.update(discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y, real_x, real_y,
                                             fake_x, fake_y, args.amp, scaler))
            if run.after_step(losses, epoch, lr):  # (4) a log line; saves; Ctrl-C, --max_iters
                break
        if not run.end_of_epoch(epoch):  # (5) sample grid, checkpoints; False: stop here
            break
    return run.finish()


def half_precision(enabled, device):
    """--amp: the networks' forward passes in half precision; the losses (D's scores are cast
    back), the weights and Adam stay float32. Off (the default): float32 throughout, the paper's."""
    return torch.autocast(device.type, amp_dtype(device), enabled=enabled)


def amp_dtype(device):
    """--amp's half precision: bfloat16 where the device has it (CPUs, most GPUs), else float16."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


# ---- Not the paper: the command line, the run's files, several processes --------------------

def main(argv=None):
    """The command line: train, and end any error as one line, `error: ...`, exit status 1."""
    args = parse_args(argv)
    world = distributed.World()  # one process, unless started by torchrun
    out = before = None
    try:
        root, out, device = prepare(args, world)
        before = os.listdir(out) if os.path.isdir(out) else None  # what a refusal leaves
        with checkpoints.FolderLock(out, world.is_main):  # one run per output folder
            world.barrier()
            status = start(args, world, root, out, device)
            world.barrier()  # every rank done (rank 0 saving last) before the group closes
            return status
    except (OSError, ValueError, distributed.Diverged) as e:
        if world.is_main:
            checkpoints.tidy(out, before)
            world.reported()  # the other ranks need not say that rank 0 ended
        raise SystemExit(f"error: {e}" if world.is_main else 1) from None
    except RuntimeError as e:  # an exchange between the ranks failed (another rank was lost)
        if world.size == 1:
            raise
        lost = world.lost(e)  # said by one rank only; raises e again if it was not that
        if lost:
            world.reported()  # and by no other rank later (one that was stopped and goes on)
        raise SystemExit(f"error: {lost}. {world.last_save()}" if lost else 1) from None
    finally:
        world.close()


def prepare(args, world):
    """The dataset folder (the toy drawn once, its defaults taken), the output folder, the
    device."""
    device = world.own_device(distributed.pick_device(args))
    world.start(device, args.timeout)
    torch.backends.cudnn.benchmark = True  # same sizes every step: let cuDNN pick kernels once
    root = resolve_dataroot(args.dataroot) if world.is_main else None  # draws the toy once
    world.barrier()
    root = root or resolve_dataroot(args.dataroot)
    if toy.is_toy(root):
        defaults = {k: v for k, v in TOY_DEFAULTS.items() if k not in args.explicit}
        vars(args).update(defaults)
        args.load_size = max(args.load_size, args.crop_size)
        world.say("toy domains: flags not given take the toy's defaults, not the paper's: "
                  + " ".join(f"--{k} {v}" for k, v in defaults.items()))
        if "OMP_NUM_THREADS" not in os.environ:  # the toy's tiny convolutions on one thread:
            torch.set_num_threads(1)  # 9% slower on an idle CPU, 4x faster on a busy one
            world.say("toy domains: one thread (OMP_NUM_THREADS=2 python train.py for two)")
    args.out = args.out or os.path.join("runs", os.path.basename(os.path.normpath(root)))
    world.check_batch(args.batch_size)  # refusals before --out is made; again after --resume
    world.check_same(root, args)  # every rank: the same image files, the same flags
    return root, args.out, device


def start(args, world, root, out, device):
    """The networks, pools and progress, new or from the checkpoint of --resume; then train()."""
    if world.restarted:  # torchrun --max-restarts started us again: go on from the last save
        args.resume = os.path.exists(os.path.join(out, "latest.pt"))
    ckpt, old = checkpoints.resume(args, out, device, CHANGEABLE_ON_RESUME)
    changed = ckpt is not None and any(getattr(args, k) != old[k]
                                       for k in ("lr", "n_epochs", "n_epochs_decay"))
    if changed:
        done = ckpt["epoch"]  # the schedule is recomputed for the new settings; say what it does
        last = old["lr"] * linear_decay(max(done, 1), old["n_epochs"], old["n_epochs_decay"])
        world.say(f"schedule: --lr {args.lr:g}, {count(args.n_epochs, 'epoch')} constant, "
                  f"then {args.n_epochs_decay} decaying linearly: epoch {max(done, 1)} trained at "
                  f"{last:.3g}, epoch {done + 1} trains at "
                  f"{args.lr * linear_decay(done + 1, args.n_epochs, args.n_epochs_decay):.3g}")
    world.check_batch(args.batch_size)
    world.say("settings: " + " ".join(f"--{k} {v}" for k, v in vars(args).items()
                                      if k != "explicit"))
    hint = amp_hint(device, args.amp, root)  # on a CPU where --amp would be faster
    if hint:
        world.say(hint)
    torch.manual_seed(args.seed)  # the same start on every rank
    networks = make_networks(args, device)  # G, F, D_X, D_Y, opt_G, opt_D
    pools = ImagePool(args.pool_size, args.seed), ImagePool(args.pool_size, args.seed + 1)
    progress = {"epoch": 0, "iter": 0, "total_iters": 0}  # epochs done, iterations into the next
    if ckpt is not None:
        for name, obj in zip(checkpoints.MODEL_KEYS, networks):
            obj.load_state_dict(ckpt[name])
        pools[0].load_state_dict(ckpt["pool_x"], device)
        pools[1].load_state_dict(ckpt["pool_y"], device)
        torch.set_rng_state(ckpt["rng"].cpu())
        progress = {k: ckpt[k] for k in progress}
        world.say(f"resumed {out}/latest.pt: {count(progress['epoch'], 'epoch')} and "
                  f"{count(progress['iter'], 'iteration')} done")
    if args.compile:
        for net in networks[:4]:  # G, F, D_X, D_Y
            net.compile()  # in place: state_dict keys (checkpoints) stay the same
    return train(args, networks, pools, Run(args, world, root, out, networks, pools, progress,
                                            device), world)


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
    # Deviation: images are resized to 286 and cropped at random to 256 (the authors' code);
    # appendix 7.1 says only that they were scaled to 256x256.
    a("--load_size", type=int, default=286, help="images are resized to this square first (the "
      "authors' code; the paper scales to 256x256, appendix 7.1)")
    a("--crop_size", type=int, default=256, help="then cropped at random to this size (256x256 "
      "training images, Sec. 4 and appendix 7.1; the random crop is the authors' code)")
    a("--n_blocks", type=int, default=9, help="residual blocks: 9 for 256px, 6 for 128px (Sec. 4)")
    a("--ngf", type=int, default=64, help="filters in the generator's first layer (appendix 7.2)")
    a("--ndf", type=int, default=64, help="filters in D's first layer (appendix 7.2)")
    a("--num_workers", type=int, default=min(4, os.cpu_count() or 1), help="data loading processes")
    on_off = argparse.BooleanOptionalAction  # --amp, and --no-amp to switch it off on --resume
    a("--amp", action=on_off, default=False, help="opt-in: mixed precision, forward passes in "
      "bfloat16 (float16 with a gradient scaler on GPUs without bfloat16); faster on GPUs and on "
      "CPUs with native bfloat16 (bench.py says), not exact")
    a("--compile", action=on_off, default=False, help="opt-in: run the four networks through "
      "torch.compile (same function, fused kernels; slow first iterations while it compiles)")
    a("--print_every", type=int, default=100, help="iterations between log lines")
    a("--save_every", type=int, default=1000, help="iterations between saves of latest.pt")
    a("--save_epoch_freq", type=int, default=10, help="keep a checkpoint copy every N epochs")
    a("--timeout", type=float, default=600, help="under torchrun: seconds a process waits for "
      "the others at one exchange before the run ends with an error naming the process that "
      "stopped answering; it must cover rank 0's slowest save of latest.pt")
    a("--n_samples", type=int, default=3, help="test images per domain in each sample grid")
    args = p.parse_args(argv)
    check_args(p, args)
    given = argv if argv is not None else sys.argv[1:]  # the flags typed, for the toy defaults
    args.explicit = sorted({s.split("=")[0].lstrip("-").removeprefix("no-")  # --no-amp: amp
                            for s in given if s.startswith("--")})
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
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        p.error(f"--timeout {args.timeout}: must be a positive number of seconds, e.g. 600")


# The toy domains' settings, for flags not given: not the paper's, but small enough that plain
# `python train.py` learns the toy on a 2-core CPU in about a minute: 8 filters (a step in half the
# time of 16) at 3 times the paper's rate (6e-4) for 4 + 3 epochs (README: errors and times of 5
# seeds).
TOY_DEFAULTS = {"load_size": 32, "crop_size": 32, "ngf": 8, "n_blocks": 3, "ndf": 8,
                "batch_size": 4, "n_epochs": 4, "n_epochs_decay": 3, "lr": 6e-4, "num_workers": 0,
                "print_every": 50, "save_epoch_freq": 3, "n_samples": 4}

# Flags that may change when a run is resumed; the others must stay as the checkpoint has them.
CHANGEABLE_ON_RESUME = ("dataroot", "max_iters", "print_every", "save_every", "save_epoch_freq",
                        "n_epochs", "n_epochs_decay", "lr", "n_samples", "amp", "compile",
                        "timeout")


if __name__ == "__main__":
    sys.exit(main())
