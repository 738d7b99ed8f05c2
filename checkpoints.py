"""Not the paper: the files of a run, written so that no kill, crash or full disk loses one.

A checkpoint is one dict saved with torch.save (keys G, F, D_X, D_Y, opt_G, opt_D, epoch, ...)
plus a SHA-256 of every tensor in it: the file format checks nothing inside a tensor, so a
flipped bit would otherwise load silently. Writes go to a temporary file that is renamed into
place; an output folder belongs to one run at a time (a lock the system drops when the process
dies). train.py reads correctly without this file.
"""
import datetime
import glob
import hashlib
import os
import re
import socket
import sys

import torch

try:
    import fcntl  # Linux, macOS
except ImportError:  # Windows
    fcntl = None


# The checkpoint's keys for what train.make_networks returns, in its order.
MODEL_KEYS = ("G", "F", "D_X", "D_Y", "opt_G", "opt_D")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: missing, unreadable, corrupt, or of another kind."""


def tensor_digest(obj):
    """SHA-256 of every tensor in a nested dict/list, with its name, dtype and shape, in order."""
    digest = hashlib.sha256()

    def visit(name, value):
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()  # the values, whatever the memory layout
            digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().data)
        elif isinstance(value, dict):
            for k in sorted(value, key=str):
                visit(f"{name}/{k}", value[k])
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                visit(f"{name}/{i}", v)

    visit("", obj)
    return digest.hexdigest()


def save_checkpoint(path, state):
    """Write state (with its tensors' digest) to path.tmp, then rename: a kill or a full disk
    mid-write leaves the previous file whole, and no temporary file stays behind."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            torch.save({**state, "tensor_sha256": tensor_digest(state)}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # also Ctrl-C: never leave a checkpoint-sized .tmp
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, (OSError, RuntimeError)):  # torch reports a failed write as RuntimeError
            reason = e.strerror if isinstance(e, OSError) and e.strerror else first_line(e)
            raise OSError(f"could not write {path} ({reason}); the previous checkpoint is intact, "
                          "and the run can go on from it with --resume") from None
        raise


def first_line(e):
    """An exception's message, or any text, as one printable line: its first line; bytes of a file
    name that are not UTF-8 as \\xNN; terminal escape codes and other control characters (a
    crafted file name or pickle can carry them) as '?'."""
    text = str(e).strip() or (type(e).__name__ if isinstance(e, BaseException) else "")
    text = text.split("\n")[0].encode("utf-8", "surrogateescape")
    text = text.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else "?" for c in text)


def read_file(path, device="cpu"):
    """Whatever torch.save wrote to path, read with weights_only=True: tensors and plain values,
    never code. FileNotFoundError, or CheckpointError saying why the file cannot be used."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # truncated, not a torch file, a folder, pickled code
        culprit = re.search(r"GLOBAL (\S+)", str(e))  # a class or function named in the pickle
        if culprit:
            raise CheckpointError(f"{path} refused: it holds pickled Python objects "
                                  f"({first_line(culprit[1])}), not only tensors, and loading "
                                  "them could run code; a network is saved as net.state_dict()"
                                  ) from None
        # torch's own text here advises loading without weights_only: never to be followed
        why = "" if "Weights only" in str(e) else f" ({type(e).__name__}: {first_line(e)})"
        raise CheckpointError(f"cannot read {path}: not a complete file written by torch.save"
                              f"{why}") from None


def check_digest(path, ckpt):
    """ckpt without its stored digest, once its tensors match it (files saved before digests
    existed have none)."""
    stored = ckpt.pop("tensor_sha256", None)
    if stored is not None and stored != tensor_digest(ckpt):
        raise CheckpointError(f"{path} is corrupt: its tensors do not match the digest saved "
                              "with them")
    return ckpt


def load_checkpoint(path, device="cpu", need=("G", "F", "D_X", "D_Y", "args")):
    """A train.py checkpoint (a dict with the keys in `need`), its digest checked. Raises
    FileNotFoundError or CheckpointError saying what is wrong and what to do."""
    ckpt = read_file(path, device)
    if not isinstance(ckpt, dict) or not set(need) <= set(ckpt):
        what = (f"a {type(ckpt).__name__}" if not isinstance(ckpt, dict) else
                "one generator's weights (the authors' released layout): translate.py applies it, "
                "and evaluate.py --fid scores what it writes"
                if any(str(k).endswith("model.1.weight") for k in ckpt) else
                f"a dict with keys {sorted(map(str, ckpt))[:5]}")
        raise CheckpointError(f"{path} is not a train.py checkpoint: it holds {what}")
    return check_digest(path, ckpt)


def kept_copies(out):
    """The kept copies epoch_NNN.pt in a run folder, newest first."""
    return sorted(glob.glob(os.path.join(out, "epoch_[0-9][0-9][0-9]*.pt")), reverse=True)


def newest_good_copy(out, device="cpu"):
    """The newest epoch_NNN.pt in out that loads and matches its digest, or None."""
    for path in kept_copies(out):
        try:
            load_checkpoint(path, device)
            return path
        except (CheckpointError, FileNotFoundError):
            continue
    return None


def load_latest(out, device="cpu"):
    """out/latest.pt for --resume; when it is missing or bad, the error names the newest good
    kept copy and the command that resumes from it."""
    latest = os.path.join(out, "latest.pt")
    try:
        return load_checkpoint(latest, device)
    except (CheckpointError, FileNotFoundError) as e:
        good = newest_good_copy(out, device)
        if good is None:
            hint = (f"no kept copy epoch_NNN.pt in {out} is usable either: start a new run with "
                    "another --out" if os.path.exists(latest) or kept_copies(out) else
                    "nothing was saved there yet: start the run without --resume")
        else:
            hint = (f"the newest good kept copy is {good}: `cp {good} {latest}`, then --resume "
                    "again")
        raise CheckpointError(f"--resume: {e}; {hint}") from None


def resume(args, out, device, changeable):
    """For train.py: the checkpoint of --resume and its settings before they were taken into
    args (None, None for a new run, which must not overwrite another run's latest.pt)."""
    latest = os.path.join(out, "latest.pt")
    if not args.resume:
        if os.path.exists(latest):
            raise ValueError(f"{latest} exists: add --resume to continue that run, or pick "
                             "another --out")
        return None, None
    ckpt = load_latest(out, device)
    return ckpt, take_settings(args, ckpt, changeable)


def tidy(out, before):
    """Remove what a refused run made in --out (the folder, samples/, train.lock), if it wrote
    nothing else: a refusal leaves --out as it was (`before`: its names, None: no folder)."""
    if out is None or not os.path.isdir(out):
        return
    made = set(os.listdir(out)) - set(before or ())
    samples = os.path.join(out, "samples")
    if made - {"samples", "train.lock"} or ("samples" in made and os.listdir(samples)):
        return
    for name in made:
        (os.rmdir if name == "samples" else os.remove)(os.path.join(out, name))
    if before is None:
        os.rmdir(out)


def take_settings(args, ckpt, changeable):
    """The run's settings from the checkpoint, into args: a flag given on the command line may
    differ only if it is in `changeable`. Returns the checkpoint's settings."""
    old = ckpt["args"]
    for k, v in old.items():
        if k in ("cuda", "device", "resume", "explicit", "out", "num_workers", "max_iters"):
            continue  # where and how this process runs, not what it trains
        if k in args.explicit and getattr(args, k) != v and k not in changeable:
            raise ValueError(f"--{k} {getattr(args, k)} differs from the checkpoint's {v}: drop "
                             "the flag, or start a new run with another --out")
        if k not in args.explicit:
            setattr(args, k, v)
    return old


class FolderLock:
    """One run per output folder: an exclusive lock on OUT/train.lock, held until the process
    ends. The system drops it when the process dies, so a killed run leaves nothing stuck."""

    def __init__(self, out, active=True):
        self.file = None
        if not active:  # under torchrun, rank 0 alone takes the lock
            return
        if os.path.exists(out) and not os.path.isdir(out):
            raise ValueError(f"--out {out} is a file, not a folder: pick another --out")
        self.path = os.path.join(out, "train.lock")
        try:
            os.makedirs(os.path.join(out, "samples"), exist_ok=True)
            self.file = open(self.path, "a+")
        except OSError as e:
            raise OSError(f"--out {out}: cannot write there ({e.strerror or e}): pick another "
                          "--out") from None
        if fcntl is not None:
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.file.seek(0)
                holder = self.file.read().strip() or "another process"
                self.file.close()
                raise OSError(f"--out {out} is in use by another training run ({holder}): "
                              "wait for it to end or stop it, or pick another --out") from None
        started = datetime.datetime.now().isoformat(timespec="seconds")
        try:
            self.file.seek(0)
            self.file.truncate()
            self.file.write(f"pid {os.getpid()} on {socket.gethostname()}, started {started}: "
                            + " ".join(sys.argv))
            self.file.flush()
        except OSError as e:  # a full disk
            raise OSError(f"--out {out}: cannot write there ({e.strerror or e}): make room, "
                          "then run again") from None
        for tmp in glob.glob(os.path.join(out, "*.tmp")):  # left by a run killed mid-write
            os.remove(tmp)

    def release(self):
        if self.file is not None:
            self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
