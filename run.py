"""Not the paper: the bookkeeping around train.py's training loop, kept out of it so that the
loop reads as the paper's steps. A Run gives this process its share of each batch, on the
device; after each step it has the processes agree on the losses, on NaN and on stopping, logs,
saves every --save_every iterations, and stops at --max_iters or on Ctrl-C; at each epoch's end
it writes the samples and checkpoints (report.RunWriter, checkpoints.py).
"""
import math
import shutil
import signal

import torch

import checkpoints
import distributed
import report
import toy
from data import UnpairedDataset


class Run:
    """What the training loop hands off: this rank's batches on the device, the agreement of the
    ranks after each step (losses, NaN, stop), the log, the saves, --max_iters and stop signals,
    and what rank 0 writes (report.RunWriter)."""

    def __init__(self, args, world, root, out, networks, pools, progress, device):
        self.args, self.world, self.device, self.progress = args, world, device, progress
        self.networks = networks
        self.dataset = UnpairedDataset(root, "train", args.load_size, args.crop_size, args.seed)
        self.n_epochs = args.n_epochs + args.n_epochs_decay
        self.per_epoch = math.ceil(len(self.dataset) / args.batch_size)
        self.last_iter = min(args.max_iters or math.inf, self.n_epochs * self.per_epoch)
        self.start_iters, self.stopping, self.why = progress["total_iters"], False, ""
        score = toy.scorer(root, args.crop_size, device, *networks[:2]) if world.is_main else None

        def state():  # the checkpoint: one dict, the same on every rank (checked)
            world.check_same_weights(networks[:4])
            if not world.is_main:
                return None  # rank 0 alone writes it: the others need not gather it
            return {**dict(zip(checkpoints.MODEL_KEYS, (obj.state_dict() for obj in networks))),
                    **progress, "pool_x": pools[0].state_dict(), "pool_y": pools[1].state_dict(),
                    "rng": torch.get_rng_state(), "args": vars(args), "world_size": world.size}
        self.writer = report.RunWriter(out, args, world.is_main, state, progress, networks[0],
                                       networks[1], root, device, score)
        world.say(f"{count(len(self.dataset.paths['X']), 'image')} in X, "
                  f"{len(self.dataset.paths['Y'])} in Y ({self.dataset.layout}): "
                  f"{count(self.per_epoch, 'iteration')} per epoch, "
                  f"{count(self.n_epochs, 'epoch')}; writing to {out}/")
        world.last_save = self.writer.last_save  # for the line that says a rank was lost
        self.stop = distributed.StopFlag(quiet=world.size > 1)  # then said once agreed on

    def batches(self, epoch):
        """Step (1): this rank's share of each batch of the epoch, from where a resumed run
        stopped, on the device and channels-last as the networks are."""
        if self.progress["total_iters"] >= self.last_iter:  # resumed at --max_iters: no step
            return
        self.dataset.epoch = epoch
        loader = torch.utils.data.DataLoader(
            self.dataset, num_workers=self.args.num_workers, pin_memory=self.device.type == "cuda",
            batch_sampler=self.world.batches(self.dataset.order(epoch), self.args.batch_size,
                                             self.progress["iter"]),
            worker_init_fn=distributed.ignore_signals_in_worker)
        for real_x, real_y in loader:
            yield (real_x.to(self.device, non_blocking=True, memory_format=torch.channels_last),
                   real_y.to(self.device, non_blocking=True, memory_format=torch.channels_last))

    def after_step(self, losses, epoch, lr):
        """Step (4) and the checks after each step; True: stop now (a signal, --max_iters)."""
        progress = self.progress
        values, finite, self.stopping = self.world.agree(losses, self.networks[:4],
                                                         self.stop.stop)
        if not finite:
            raise ValueError(f"a loss or a weight became NaN or inf at epoch {epoch}, iteration "
                             f"{progress['iter'] + 1} ({values}); stopped without saving it. "
                             f"{self.writer.last_save(nan=True)} Try a smaller --lr.")
        progress["iter"] += 1
        progress["total_iters"] += 1
        if self.stopping:  # every rank at this step: which signal, sent to which rank
            self.why = self.world.stopped_by(self.stop)
            if self.world.size > 1:
                self.world.say(f"stopping ({self.why}): every process ends after this step")
        self.writer.log(values, epoch, self.n_epochs, self.per_epoch, lr, self.last_iter)
        if progress["total_iters"] % self.args.save_every == 0:
            self.saving(self.writer.checkpoint)
        return self.stopping or progress["total_iters"] >= self.last_iter

    def end_of_epoch(self, epoch):
        """Step (5) once the epoch is complete; True: go on with the next epoch."""
        if self.progress["iter"] < self.per_epoch:  # stopped inside the epoch
            return False
        self.progress["epoch"], self.progress["iter"] = epoch, 0
        self.saving(self.writer.end_of_epoch, epoch, self.n_epochs)
        return not self.stopping and self.progress["total_iters"] < self.last_iter

    def finish(self):
        """Save, say how far the run got; the exit status: 0, or 128 + the stopping signal.
        Under torchrun a stop exits 0 on every rank: torchrun then ends the job as done, where a
        failure would be restarted (--max-restarts) and the stop undone."""
        self.stop.restore()
        self.saving(self.writer.checkpoint)
        self.writer.finish(self.stopping)  # the results page: finished, or where it stopped
        done = self.progress["epoch"]
        self.world.say(f"{'finished' if done >= self.n_epochs else 'stopped'}"
                       f"{f' ({self.why})' if self.why else ''} after "
                       f"{count(self.progress['total_iters'] - self.start_iters, 'iteration')}"
                       f" this run ({count(done, 'epoch')} done); {self.writer.summary()}"
                       + ("\nthe same command with --resume continues it" if self.why else ""))
        if not self.stopping or self.world.launched:
            return 0
        return 128 + (self.stop.signum or signal.SIGINT)

    def saving(self, write, *args):
        """write(*args), which writes files on rank 0; when it fails on a full disk, say so (torch
        says 'unexpected pos' where it could not write a checkpoint)."""
        try:
            return write(*args)
        except OSError as e:
            need = 3 * sum(p.numel() * p.element_size()  # weights, Adam's two averages
                           for net in self.networks[:4] for p in net.parameters())
            free = shutil.disk_usage(self.writer.out).free
            if free >= need:
                raise
            raise OSError(f"the disk holding {self.writer.out} is full ({free / 1e6:.1f} MB free; "
                          f"a checkpoint takes about {need / 1e6:.1f} MB): {e}") from None


def native_bfloat16_flags(flags=None):
    """Which of the CPU's flags for native bfloat16 arithmetic (avx512_bf16, amx_bf16) it has:
    where --amp pays (docs/speed.md). None when /proc/cpuinfo cannot tell. flags: for tests."""
    try:
        if flags is None:
            with open("/proc/cpuinfo") as f:
                flags = next(line.split(":", 1)[1].split() for line in f
                             if line.startswith("flags"))
    except (OSError, StopIteration):
        return None
    return [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags]


def amp_hint(device, amp, root):
    """The line a real-data run on a CPU with native bfloat16 says once when --amp is off (the
    paper's float32 stays the default); None elsewhere, and on the toy, where --amp is slower."""
    have = device.type == "cpu" and not amp and not toy.is_toy(root) and native_bfloat16_flags()
    if have:
        return (f"this CPU has native bfloat16 ({', '.join(have)}): --amp trains 1.3-2x faster, "
                "in bfloat16 instead of the paper's float32 (docs/speed.md)")
    return None


def count(n, noun):
    """'1 epoch', '2 epochs': a count with its noun, for the run's messages."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
