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
import time

import torch

import report
from cyclegan import Discriminator, Generator, init_weights
from data import ImagePool, UnpairedDataset, is_toy, resolve_dataroot
from evaluate import format_errors, ground_truth_errors, load_pairs
from losses import generator_objective, lsgan_d_loss


def linear_decay(epoch, n_epochs=100, n_epochs_decay=100):
    """Learning-rate multiplier for epoch 1, 2, ..., n_epochs + n_epochs_decay (appendix 7.1).

    The paper keeps the rate for 100 epochs, then decays it "linearly to zero over the next 100".
    Per epoch, that is 1.0 up to epoch n_epochs, then n_epochs_decay equal steps of
    1 / (n_epochs_decay + 1): epoch 101 trains at 100/101 of the rate, epoch 200 at 1/101, and the
    line would reach zero at epoch 201, so every epoch still learns something.
    """
    return 1.0 - max(0, epoch - n_epochs) / (n_epochs_decay + 1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--dataroot", default="toy", help="folder with trainA/ (domain X) and trainB/ (domain Y), a "
      "dataset name, or toy: shapes in two styles, drawn into datasets/toy/ (data.make_toy)")
    a("--out", default=None, help="output folder (default runs/NAME, NAME from --dataroot)")
    a("--cuda", action="store_true", help="train on the GPU (fails if none is visible)")
    a("--device", default=None, help="a torch device by name, e.g. cuda:1 or cpu")
    a("--seed", type=int, default=0, help="seeds the weights, the data order and the pool")
    a("--resume", action="store_true", help="continue from OUT/latest.pt")
    a("--n_epochs", type=int, default=100, help="epochs at the initial rate (appendix 7.1)")
    a("--n_epochs_decay", type=int, default=100, help="epochs of linear decay to 0 (appendix 7.1)")
    a("--max_iters", type=int, default=None, help="stop (and save) after this many iterations")
    a("--batch_size", type=int, default=1, help="batch size 1 (appendix 7.1)")
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
    args.explicit = sorted({s.split("=")[0].lstrip("-") for s in (argv or sys.argv[1:])
                            if s.startswith("--")})
    return args


# The toy domains' settings, for flags not given: not the paper's, but small enough that plain
# `python train.py` learns the toy on a 2-core CPU in about 90 s. 8 filters instead of 16 halve a
# step's time, and at 3 times the paper's rate (6e-4) 6 epochs reach a lower ground-truth error
# than 16 filters did in 10 epochs at 2e-4 (README, 3 seeds each).
TOY_DEFAULTS = {"load_size": 32, "crop_size": 32, "ngf": 8, "n_blocks": 3, "ndf": 8,
                "batch_size": 4, "n_epochs": 3, "n_epochs_decay": 3, "lr": 6e-4, "num_workers": 0,
                "print_every": 50, "save_epoch_freq": 3, "n_samples": 4}

# Flags that may change when a run is resumed; the others must stay as the checkpoint has them.
CHANGEABLE_ON_RESUME = ("dataroot", "max_iters", "print_every", "save_every", "save_epoch_freq",
                        "n_epochs", "n_epochs_decay", "n_samples", "amp", "compile")


def pick_device(args):
    """The device from --cuda / --device, or a clear error if it is not there."""
    name = args.device or ("cuda" if args.cuda else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SystemExit(f"error: --device {name}: not a device name (try cpu, cuda, cuda:1)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"error: --{'device ' + name if args.device else 'cuda'}: no GPU is "
                             "visible to PyTorch; drop the flag to run on the CPU, or install a "
                             "CUDA build of torch")
        if (device.index or 0) >= torch.cuda.device_count():
            raise SystemExit(f"error: --device {name}: only {torch.cuda.device_count()} GPU(s)")
    return device


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


def save_checkpoint(path, state):
    """Write to a temporary file, then rename: a crash mid-write never spoils the last good file."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:  # disk full, folder removed: say so, and keep the last good file
        if os.path.exists(tmp):
            os.remove(tmp)
        raise SystemExit(f"error: could not write checkpoint {path} ({e}); the previous one, if "
                         "any, is unchanged")


def load_checkpoint(path, device):
    """A checkpoint read with weights_only=True: tensors and plain values only, never code."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise SystemExit(f"error: --resume: {path} does not exist")
    except Exception as e:  # truncated file, wrong format, pickled code
        raise SystemExit(f"error: cannot read checkpoint {path}: {str(e).splitlines()[0]}")


class StopFlag:
    """Ctrl-C (or SIGTERM) asks the loop to finish its step and save; a second Ctrl-C quits."""

    def __init__(self):
        self.stop = False
        self.saved = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def restore(self):
        for s, handler in self.saved.items():
            signal.signal(s, handler)

    @staticmethod
    def ignore_in_worker(worker_id):
        """Loader workers ignore both signals: the main process stops them after saving."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def handle(self, signum, frame):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        print("\nstopping: finishing this step and saving latest.pt (Ctrl-C again to quit now)",
              flush=True)


def main(argv=None):
    args = parse_args(argv)
    device = pick_device(args)
    torch.backends.cudnn.benchmark = True  # same sizes every step: let cuDNN pick kernels once
    root = resolve_dataroot(args.dataroot)
    if is_toy(root):
        toy = {k: v for k, v in TOY_DEFAULTS.items() if k not in args.explicit}
        vars(args).update(toy)
        args.load_size = max(args.load_size, args.crop_size)
        print("toy domains: flags not given take the toy's defaults, not the paper's: "
              + " ".join(f"--{k} {v}" for k, v in toy.items()))
    out = args.out or os.path.join("runs", os.path.basename(os.path.normpath(root)))
    latest = os.path.join(out, "latest.pt")
    ckpt = None
    if args.resume:
        ckpt = load_checkpoint(latest, device)
        for k, v in ckpt["args"].items():  # the run's settings come from the checkpoint, except
            if k in ("cuda", "device", "resume", "explicit", "out", "num_workers", "max_iters"):
                continue
            if k in args.explicit and getattr(args, k) != v and k not in CHANGEABLE_ON_RESUME:
                raise SystemExit(f"error: --{k} {getattr(args, k)} differs from the checkpoint's "
                                 f"{v}: drop the flag, or start a new run with another --out")
            if k not in args.explicit:
                setattr(args, k, v)
    elif os.path.exists(latest):
        raise SystemExit(f"error: {latest} exists: add --resume to continue that run, or pick "
                         "another --out")
    os.makedirs(os.path.join(out, "samples"), exist_ok=True)
    print("settings: " + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "explicit"))

    torch.manual_seed(args.seed)
    nets = G, F, D_X, D_Y, opt_G, opt_D = make_networks(args, device)
    scaler = (torch.amp.GradScaler(device.type)  # float16 needs loss scaling; bfloat16 does not
              if args.amp and amp_dtype(device) == torch.float16 else None)
    for net in (G, F, D_X, D_Y) if args.compile else ():
        net.compile()  # in place: state_dict keys (checkpoints) stay the same
    pool_x, pool_y = ImagePool(args.pool_size, args.seed), ImagePool(args.pool_size, args.seed + 1)
    dataset = UnpairedDataset(root, "train", args.load_size, args.crop_size, args.seed)
    # The sample grids show the same few images each epoch: the test split's, else training images.
    test_root = all(os.path.isdir(os.path.join(root, t)) for t in ("testA", "testB"))
    samples = UnpairedDataset(root, "test" if test_root else "train", args.crop_size,
                              args.crop_size)
    sample_x = torch.stack([samples.load("X", i) for i in range(args.n_samples)]).to(device)
    sample_y = torch.stack([samples.load("Y", i) for i in range(args.n_samples)]).to(device)
    pairs = load_pairs(root, args.crop_size, device) if is_toy(root) else None  # ground truth

    epochs_done, iters_done, total_iters = 0, 0, 0
    if ckpt is not None:
        for name, obj in zip(("G", "F", "D_X", "D_Y", "opt_G", "opt_D"), nets):
            obj.load_state_dict(ckpt[name])
        pool_x.load_state_dict(ckpt["pool_x"], device)
        pool_y.load_state_dict(ckpt["pool_y"], device)
        torch.set_rng_state(ckpt["rng"].cpu())
        epochs_done, iters_done, total_iters = ckpt["epoch"], ckpt["iter"], ckpt["total_iters"]
        print(f"resumed {latest}: {epochs_done} epochs and {iters_done} iterations done")
    log_path = os.path.join(out, "loss_log.csv")
    report.append_log(log_path, None, keep_until=total_iters)

    def checkpoint(path):
        save_checkpoint(path, {
            "G": G.state_dict(), "F": F.state_dict(), "D_X": D_X.state_dict(),
            "D_Y": D_Y.state_dict(), "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
            "epoch": epochs_done, "iter": iters_done, "total_iters": total_iters,
            "pool_x": pool_x.state_dict(), "pool_y": pool_y.state_dict(),
            "rng": torch.get_rng_state(), "args": vars(args)})

    n_total = args.n_epochs + args.n_epochs_decay
    per_epoch = math.ceil(len(dataset) / args.batch_size)
    run_iters = n_total * per_epoch if args.max_iters is None else min(args.max_iters,
                                                                        n_total * per_epoch)
    print(f"{len(dataset.paths['X'])} images in X, {len(dataset.paths['Y'])} in Y: {per_epoch} "
          f"iterations per epoch, {n_total} epochs; writing to {out}/")
    stop = StopFlag()
    sums, window_start, window_iters, start_iters = {}, time.time(), 0, total_iters
    while epochs_done < n_total and total_iters < run_iters and not stop.stop:
        epoch = epochs_done + 1
        lr = args.lr * linear_decay(epoch, args.n_epochs, args.n_epochs_decay)  # appendix 7.1
        for opt in (opt_G, opt_D):
            for group in opt.param_groups:
                group["lr"] = lr
        dataset.epoch = epoch
        order = dataset.order(epoch)[iters_done * args.batch_size:]
        loader = torch.utils.data.DataLoader(dataset, args.batch_size, sampler=order,
                                             num_workers=args.num_workers,
                                             worker_init_fn=StopFlag.ignore_in_worker,
                                             pin_memory=device.type == "cuda")
        for real_x, real_y in loader:
            # (1) a batch of each domain
            real_x = real_x.to(device, non_blocking=True, memory_format=torch.channels_last)
            real_y = real_y.to(device, non_blocking=True, memory_format=torch.channels_last)
            # (2) generators, then (3) discriminators on the fakes just made
            fake_x, fake_y, parts = generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, args,
                                                   scaler)
            parts.update(discriminator_step(D_X, D_Y, opt_D, pool_x, pool_y, real_x, real_y,
                                            fake_x, fake_y, args.amp, scaler))
            values = dict(zip(parts, torch.stack(list(parts.values())).tolist()))
            if not all(math.isfinite(v) for v in values.values()):
                raise SystemExit(f"error: a loss became NaN or inf at epoch {epoch}, iteration "
                                 f"{iters_done + 1} ({values}); stopped without saving, so "
                                 f"{latest} still holds the last good state. Try a smaller --lr.")
            iters_done += 1
            total_iters += 1
            window_iters += 1
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            # (4) a log line
            if iters_done % args.print_every == 0 or iters_done == per_epoch:
                s_per_it = (time.time() - window_start) / window_iters
                mean = {k: v / window_iters for k, v in sums.items()}
                terms = [f"{k} {v:.3f}" for k, v in mean.items()]  # G and F's terms, then D_X, D_Y
                G_terms, D_terms = " ".join(terms[:-2]), " ".join(terms[-2:])
                eta = report.format_time(s_per_it * (run_iters - total_iters))
                print(f"epoch {epoch}/{n_total} iter {iters_done}/{per_epoch} | {G_terms} | "
                      f"{D_terms} | {s_per_it:.2f} s/it | ETA {eta}", flush=True)
                report.append_log(log_path, {
                    "epoch": epoch, "iter": iters_done, "total_iter": total_iters, "idt": "",
                    "s_per_it": f"{s_per_it:.4f}", "lr": f"{lr:.3g}",
                    **{k: f"{v:.5f}" for k, v in mean.items()}})
                sums, window_start, window_iters = {}, time.time(), 0
            if total_iters % args.save_every == 0:
                checkpoint(latest)
            if stop.stop or total_iters >= run_iters:
                break
        if iters_done < per_epoch:  # stopped inside the epoch
            break
        # (5) end of epoch: samples, curves, gallery, checkpoint
        epochs_done, iters_done = epoch, 0
        report.save_samples(G, F, sample_x, sample_y,
                            os.path.join(out, "samples", f"epoch_{epoch:03d}.png"))
        report.plot_losses(log_path, os.path.join(out, "loss_curves.png"))
        report.write_index(out, f"CycleGAN on {root}")
        if pairs is not None:
            print(f"epoch {epoch}/{n_total} | {format_errors(ground_truth_errors(G, F, *pairs))}",
                  flush=True)
        checkpoint(latest)
        if epoch % args.save_epoch_freq == 0:
            checkpoint(os.path.join(out, f"epoch_{epoch:03d}.pt"))
    stop.restore()
    checkpoint(latest)
    done = "finished" if epochs_done >= n_total else "stopped"
    page = os.path.join(out, "index.html")  # written at the end of each epoch
    print(f"{done} after {total_iters - start_iters} iterations this run ({epochs_done} epochs "
          f"done); checkpoint {latest}" + (f", samples {page}" if os.path.exists(page) else ""))
    if pairs is not None:
        print(f"{len(pairs[0])} test pairs | {format_errors(ground_truth_errors(G, F, *pairs))}")
    return 0 if not stop.stop else 130


if __name__ == "__main__":
    sys.exit(main())
