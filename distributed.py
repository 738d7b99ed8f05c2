"""Not the paper: training on several processes (GPUs, machines) under torchrun, together.

One process trains as train.py does alone (the README's deviations apply), and this file then
does nothing. Under `torchrun --nproc_per_node N train.py ...`, N processes ("ranks") train one
model: each takes its share of every global batch, the gradients are averaged, the history pool
is one pool shared by all, and all ranks agree, step by step, on the losses, on NaNs and on when
to stop.
Rank 0 alone writes files. docs/running.md, "Several GPUs and machines", says what is tested.
"""
import ctypes
import datetime
import hashlib
import math
import os
import signal
import sys
import time

import torch
import torch.distributed as dist

import data


def pick_device(args):
    """The device from --cuda / --device (train.py, translate.py, bench.py); ValueError naming
    the flag if it is not there."""
    name = args.device or ("cuda" if args.cuda else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name}: not a device name (try cpu, cuda, cuda:1)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--{'device ' + name if args.device else 'cuda'}: no GPU is "
                             "visible to PyTorch; drop the flag to run on the CPU, or install a "
                             "CUDA build of torch")
        if (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} GPU(s)")
    return device


class Diverged(RuntimeError):
    """The ranks' weights differ: the gradient averaging went wrong somewhere."""


class World:
    """This process's place among the ranks: rank, size, its device, and the few collectives
    the training loop needs. With one process (size 1) every method is a no-op."""

    def __init__(self):
        self.size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
        self.launched = "TORCHELASTIC_RUN_ID" in os.environ  # started by torchrun, any size
        self.device, self.timeout, self.broken = torch.device("cpu"), None, False
        self.last_save = lambda: "Nothing was saved in this run yet."  # Run says more

    @property
    def is_main(self):
        return self.rank == 0  # the global rank: in a multi-node job, rank 0 is on one node

    def say(self, *message):
        """Print on rank 0 only: one log, not one per process."""
        if self.is_main:
            print(*message, flush=True)

    def own_device(self, device):
        """Under torchrun, --cuda means this rank's own GPU, cuda:LOCAL_RANK."""
        if self.size == 1:
            return device
        if device.type == "cuda":
            if device.index not in (None, 0):
                raise ValueError(f"--device {device}: under torchrun each rank takes its own GPU "
                                 "(cuda:LOCAL_RANK); use --cuda")
            return torch.device("cuda", self.local_rank)
        if device.type != "cpu":
            raise ValueError(f"--device {device}: under torchrun use --cuda or the CPU")
        return device

    def start(self, device, timeout):
        """Join the process group: NCCL between GPUs, gloo between CPU processes. A rank that
        waits more than `timeout` seconds for the others at one exchange raises (see lost)."""
        if self.launched:
            stop_with_launcher()
        if self.size == 1:
            return
        self.device, self.timeout = device, timeout
        limit = datetime.timedelta(seconds=timeout)
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group("nccl", device_id=device, timeout=limit)
        else:
            dist.init_process_group("gloo", timeout=limit)

    def check_same(self, root, args):
        """Refuse to train unless every rank lists the same image files in root's two training
        folders and has the same flags (but --num_workers): ranks that read different files
        would train apart without a word, or hang at an epoch's end."""
        if self.size == 1:
            return
        folders = data.split_folders(root, "train")[:2]
        facts = {**{f"images in {d}": listing(f) for d, f in zip("XY", folders)},
                 **{f"--{k}": v for k, v in vars(args).items()
                    if k not in ("explicit", "num_workers")}}
        every = [None] * self.size
        dist.all_gather_object(every, facts)
        for rank, theirs in enumerate(every):
            for key, ours in every[0].items():
                if theirs.get(key) == ours:
                    continue
                if key.startswith("--"):
                    what = f"rank {rank} has {key} {theirs.get(key)}, rank 0 {key} {ours}"
                elif theirs[key][0] != ours[0]:
                    what = f"rank {rank} sees {theirs[key][0]} {key}, rank 0 sees {ours[0]}"
                else:
                    what = (f"rank {rank} sees {ours[0]} {key} as rank 0 does, but with other "
                            "file names")
                raise ValueError(f"{what}: every process must see the same dataset and flags "
                                 "(on several machines: the same files at the same path)")

    def check_batch(self, batch_size):
        if batch_size % self.size:
            raise ValueError(f"--batch_size {batch_size} is the global batch and must divide "
                             f"among the {self.size} processes: use a multiple of {self.size}")

    def close(self):
        if dist.is_initialized() and not self.broken:  # broken: another rank is lost
            dist.destroy_process_group()

    def wrap(self, net):
        """Average the gradients of net over the ranks (DistributedDataParallel, default
        arguments: static_graph would silently leave D_X and D_Y unsynchronized)."""
        if self.size == 1:
            return net
        return torch.nn.parallel.DistributedDataParallel(net)

    def barrier(self):
        if self.size > 1:
            dist.barrier()

    def batches(self, order, batch_size, start=0):
        """This rank's items for each step of an epoch from step `start`: step k trains on
        order[k*B:(k+1)*B], as one process with --batch_size B would; rank r takes the r-th of
        `size` equal, contiguous chunks. An epoch that does not divide among the ranks is
        padded by wrapping around to its start, so that every rank takes the same number."""
        order = order + order[:-len(order) % self.size]
        steps = []
        for k in range(start, -(-len(order) // batch_size)):
            step = order[k * batch_size:(k + 1) * batch_size]
            n = len(step) // self.size  # the last step may be shorter
            steps.append(step[self.rank * n:(self.rank + 1) * n])
        return steps

    def average(self, values):
        """The mean over ranks of a 1-d tensor: the losses of a global batch, and flags."""
        if self.size > 1:
            dist.all_reduce(values)
            values = values / self.size
        return values

    def agree(self, parts, nets, stop):
        """After a step: the global batch's losses (mean over ranks), whether every loss and
        weight is finite, and whether any rank was asked to stop. One all-reduce in all."""
        weights = [p.detach() for net in nets for p in net.parameters()]
        largest = torch.nn.utils.get_total_norm(weights, float("inf"))  # NaN if any is NaN
        flags = torch.stack([largest.isfinite(), torch.tensor(stop, device=largest.device)])
        dtype = torch.get_default_dtype()  # float32; float64 in the equivalence tests
        values = self.average(torch.cat([torch.stack(list(parts.values())).detach().to(dtype),
                                         flags.to(dtype)])).tolist()
        *losses, finite, stopping = values
        return dict(zip(parts, losses)), finite == 1 and all(map(math.isfinite, losses)), \
            stopping > 0

    def stopped_by(self, stop):
        """Why the run stops, from every rank's StopFlag: 'SIGTERM to rank 1', 'SIGINT', ..."""
        died = self.launched and stop.stop and stop.orphaned  # not a nohup run's closed shell
        codes = [-1 if died else stop.signum]  # -1: torchrun died
        if self.size > 1:
            codes = self.gather(torch.tensor(codes, device=self.device)).tolist()
        named = {}
        for rank, code in enumerate(codes):
            if code:
                named.setdefault(code, []).append(rank)
        return ", ".join(("torchrun, the launcher, died" if code < 0 else
                          signal.Signals(code).name)
                         + (f" to rank {', '.join(map(str, ranks))}"
                            if len(ranks) < self.size else "")
                         for code, ranks in named.items())

    def lost(self, error, grace=5.0):
        """After an exchange failed (gloo's and NCCL's errors are RuntimeErrors): one line on
        which rank stopped answering or ended, for the lowest rank still running to print, and
        None on the others. Gloo's error names no rank, so each rank still running writes its
        rank into the store the ranks share (torchrun's), waits `grace` seconds for the others,
        and reads who is missing. Raises `error` again if it is not a failed exchange."""
        text = str(error)
        if self.size == 1 or not any(w in text for w in (
                "Timed out", "timed out", "Connection", "connection", "closed", "reset",
                "Broken pipe", "NCCL", "gloo")):
            raise error
        self.broken, how = True, f"answered nothing for {self.timeout:g} s (--timeout)"
        if "imed out" not in text:
            how = "ended (a crash, a kill, or the out-of-memory killer?)"
        try:
            store = dist.distributed_c10d._get_default_store()
            store.set_timeout(datetime.timedelta(seconds=grace))
            store.set(f"running after the failure/{self.rank}", "1")
            deadline = time.monotonic() + grace
            while True:
                running = [r for r in range(self.size)
                           if store.check([f"running after the failure/{r}"])]
                if len(running) == self.size or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        except Exception:  # the store is gone too: its host (torchrun, or rank 0) is lost
            return (f"rank {self.rank}: another rank {how}, and which one cannot be told: the "
                    "store the ranks share does not answer either")
        if self.rank != running[0] or store.check(["reported"]):
            return None  # another rank says it, or rank 0 ended with its own error line
        missing = [r for r in range(self.size) if r not in running]
        if not missing:
            return f"an exchange between the ranks failed ({first_line(text)})"
        return f"rank{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} {how}"

    def reported(self):
        """Rank 0 printed an error and ends: the others, losing it, need not say so (lost)."""
        if self.size > 1 and dist.is_initialized():
            try:
                store = dist.distributed_c10d._get_default_store()
                store.set_timeout(datetime.timedelta(seconds=5))
                store.set("reported", "1")
            except Exception:
                pass  # the store is gone: the others may say that rank 0 ended

    def gather(self, images):
        """The images of every rank, concatenated in rank order: the whole global batch."""
        if self.size == 1:
            return images
        parts = [torch.empty_like(images) for _ in range(self.size)]
        dist.all_gather(parts, images.contiguous())
        return torch.cat(parts)

    def check_same_weights(self, nets):
        """Stop with a clear error if the ranks' weights differ (a silent desync of the
        gradient averaging): one float64 sum of all weights, compared by all_reduce MIN/MAX."""
        if self.size == 1:
            return
        total = sum(p.detach().double().sum() for net in nets for p in net.parameters())
        low, high = total.clone().reshape(1), total.clone().reshape(1)
        dist.all_reduce(low, dist.ReduceOp.MIN)
        dist.all_reduce(high, dist.ReduceOp.MAX)
        if low.item() != high.item():
            raise Diverged(f"the {self.size} ranks' weights have diverged (sums from "
                               f"{low.item():.17g} to {high.item():.17g}): not saving; resume "
                               "from the last checkpoint")


class SharedPool:
    """One history pool (Sec. 4) for all ranks: each rank's fakes are gathered, every rank runs
    the same seeded pool on the whole global batch, and keeps its own share of the result. So the
    discriminators see what one process would, and the pool is the same on every rank."""

    def __init__(self, pool, world):
        self.pool, self.world = pool, world

    def query(self, images):
        out = self.pool.query(self.world.gather(images.detach()))
        n = len(images)
        return out[self.world.rank * n:(self.world.rank + 1) * n]


def first_line(text):
    """The first line of an error's text, without gloo's source file prefix."""
    return text.strip().split("\n")[0].split("] ", 1)[-1]


def listing(folder):
    """How many image files a folder holds and a digest of their names (World.check_same)."""
    names = sorted(os.path.relpath(p, folder) for p in data.find_images(folder))
    return len(names), hashlib.sha256("\n".join(names).encode()).hexdigest()


def stop_with_launcher():
    """Under torchrun, on Linux: when the launcher dies (the out-of-memory killer, a scheduler's
    SIGKILL), the system sends this process SIGTERM, which StopFlag turns into finishing the
    step and saving. Workers run in sessions of their own: nothing else would tell them."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


class StopFlag:
    """Ctrl-C, SIGTERM or a closed terminal (SIGHUP) asks the loop to finish its step and save;
    a second Ctrl-C quits at once, and other signals again change nothing (the system may send
    stop_with_launcher's SIGTERM more than once). The flag is agreed on by all ranks in each
    step's average."""

    SIGNALS = [s for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s)]

    def __init__(self, quiet=False):
        self.signum, self.quiet = 0, quiet  # quiet: Run says it once the ranks agree
        self.parent = os.getppid()
        self.saved = {}
        for name in self.SIGNALS:
            s = getattr(signal, name)
            if name == "SIGHUP" and signal.getsignal(s) == signal.SIG_IGN:
                continue  # started with nohup: a closed terminal must not stop the run
            self.saved[s] = signal.signal(s, self.handle)

    @property
    def stop(self):
        return self.signum != 0

    @property
    def orphaned(self):
        """This process's parent has died: the stop comes from stop_with_launcher."""
        return os.getppid() != self.parent

    def restore(self):
        for s, handler in self.saved.items():
            signal.signal(s, handler)

    def handle(self, signum, frame):
        if self.stop:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return
        self.signum = signum
        if signum == getattr(signal, "SIGHUP", None) and sys.stdout.isatty():
            sys.stdout = sys.stderr = open(os.devnull, "w")  # the terminal is gone: printing
            # to it would fail before the save
        if not self.quiet:
            print("\nstopping: finishing this step and saving latest.pt (Ctrl-C again to quit "
                  "now)", flush=True)


def ignore_signals_in_worker(worker_id):
    """Data-loader workers ignore the stop signals: the main process ends them after saving."""
    for s in StopFlag.SIGNALS:
        signal.signal(getattr(signal, s), signal.SIG_IGN)
