"""Worked examples for distributed.py: torchrun with 2 CPU processes (gloo) trains the same model
as one process with the same global batch, a checkpoint resumes with another number of processes,
the batch split, the shared pool, stopping together, and the guard against diverged ranks; then
faults: a rank that stops answering, ranks that see other files, a killed torchrun, a stop sent to
one process, and refusals that leave --out as it was."""
import argparse
import csv
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import types

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import checkpoints
import distributed
import run
import train
from cyclegan import Discriminator, Generator
from data import ImagePool
from test_train import TINY, make_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 5 images in X and 6 in Y: an epoch of 6 items, 3 steps of a global batch of 2; a pool of 3
# fakes is full after 2 steps, so 5 steps also test the pool's swaps.
FLAGS = [*TINY, "--batch_size", "2", "--pool_size", "3", "--print_every", "1"]


# The equivalence tests train in float64. In float32, two ways of summing the same numbers round
# differently, and Adam turns the difference into steps of about lr (a weight whose gradient is
# near zero moves by about lr either way, and which way can hang on the last bit): one process
# with 2 OpenMP threads instead of 1 drifts as far from itself as 2 processes do from 1. In float64
# that rounding lies far below Adam's eps, so 2 processes and 1 agree to ~1e-14 (measured: weights
# 4e-15, outputs 5e-14 apart after 5 steps), while a wrong batch split or a pool per rank leaves
# them 1e-3 and 2e-2 to 1e-1 apart: ten orders of magnitude (the last test below).
FLOAT64 = """
import sys
sys.path.insert(0, {root!r})
import torch
torch.set_default_dtype(torch.float64)  # networks, Adam's state and pools are made in float64
import data
to_tensor = data.to_tensor
data.to_tensor = lambda image: to_tensor(image).double()  # and so are the images read
{patch}
import train
sys.exit(train.main(sys.argv[1:]))
"""


def train_py_in_float64(tmp, patch=""):
    """A script that runs train.py in float64, after the lines `patch` (a mutation, a fault)."""
    script = tmp / f"train_float64_{abs(hash(patch))}.py"
    script.write_text(FLOAT64.format(root=ROOT, patch=patch))
    return str(script)


def launch(data, out, nproc, *flags, script=None, timeout=240, status=0):
    """train.py (or `script`) in one process, or under torchrun with nproc processes; returns
    what it printed (stdout; with stderr after it when status is not 0)."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                 str(nproc)] if nproc > 1 else [sys.executable])
    cmd = [*launcher, script or os.path.join(ROOT, "train.py"), "--dataroot", str(data), "--out",
           str(out), *FLAGS, *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)
    assert (done.returncode == 0) == (status == 0), done.stdout + done.stderr
    return done.stdout if status == 0 else done.stdout + done.stderr


NETS = {"G": Generator(ngf=4, n_blocks=1), "F": Generator(ngf=4, n_blocks=1),
        "D_X": Discriminator(ndf=4), "D_Y": Discriminator(ndf=4)}


def cancelled_biases(net):
    """Names of conv biases followed by an instance norm: the norm subtracts them again, so their
    exact gradient is 0, and Adam turns the rounding noise of its computed value into steps."""
    return {f"{prefix}.{i}.bias" for prefix, seq in net.named_modules()
            if isinstance(seq, torch.nn.Sequential)
            for i, (layer, after) in enumerate(zip(seq, list(seq)[1:]))
            if "Norm" in type(after).__name__}


def difference(a, b):
    """How far apart two checkpoints' networks are: the largest difference of any weight (but
    the cancelled biases), of any cancelled bias, and of any output on the same input images."""
    x = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(0),
                   dtype=torch.float64) * 2 - 1
    weights = biases = outputs = 0.0
    for name, net in NETS.items():
        assert a[name].keys() == b[name].keys()
        cancelled = cancelled_biases(net)
        for k, w in a[name].items():
            d = (w - b[name][k]).abs().max().item()
            if k in cancelled:
                biases = max(biases, d)
            else:
                weights = max(weights, d)
        net.double().load_state_dict(a[name])
        out_a = net(x)
        net.load_state_dict(b[name])
        outputs = max(outputs, (out_a - net(x)).abs().max().item())
    return weights, biases, outputs


def same_networks(a, b, tol=1e-10):
    """Every weight of the four networks, and what they compute, agree to float64 rounding.

    Measured: weights and outputs 1e-14 apart after 5 to 7 steps. The cancelled biases move by
    up to 4e-9 (their gradient is rounding noise some 1e-13 in size, and Adam divides it by a
    running size of the same noise plus eps = 1e-8); they change no output, so 1e-6 for them.
    """
    weights, biases, outputs = difference(a, b)
    assert weights <= tol and outputs <= tol and biases <= 1e-6, \
        f"weights {weights:.2g}, outputs {outputs:.2g}, cancelled biases {biases:.2g} apart"


def close(a, b, tol=1e-10):
    return (a - b).abs().max().item() <= tol


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process and two processes, the same flags and global batch, 5 steps, in float64."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = make_images(tmp / "data", n=5)
    script = train_py_in_float64(tmp)
    logs = {n: launch(data, tmp / f"run{n}", n, "--max_iters", "5", script=script)
            for n in (1, 2)}
    return tmp, data, logs


def test_two_processes_train_the_same_model_as_one_with_the_same_global_batch(runs):
    tmp, _, logs = runs
    one = torch.load(tmp / "run1" / "latest.pt", weights_only=True)
    two = torch.load(tmp / "run2" / "latest.pt", weights_only=True)
    assert (one["total_iters"], two["total_iters"], two["world_size"]) == (5, 5, 2)
    assert one["G"]["model.1.weight"].dtype == torch.float64
    same_networks(one, two)
    # ONE pool of 3 fakes shared by both processes holds what one process's pool holds.
    for pool in ("pool_x", "pool_y"):
        assert len(one[pool]["images"]) == len(two[pool]["images"]) == 3
        assert all(close(a, b) for a, b in zip(one[pool]["images"], two[pool]["images"]))
        assert one[pool]["rng"] == two[pool]["rng"]
    # The logged losses are the global batch's, not rank 0's own (the log keeps 6 digits).
    rows = [list(csv.DictReader(open(tmp / f"run{n}" / "loss_log.csv"))) for n in (1, 2)]
    assert len(rows[0]) == len(rows[1]) == 5
    for r1, r2 in zip(*rows):
        for k in ("GAN(G)", "GAN(F)", "cyc_x", "cyc_y", "idt", "D_X", "D_Y"):
            assert r1[k] == r2[k], (r1, r2)
    # Only rank 0 writes: each log line appears once.
    assert logs[2].count("epoch 1/200 iter 1/3 |") == 1
    assert logs[2].count("settings:") == 1


def test_a_two_process_checkpoint_resumes_in_one_process(runs, tmp_path):
    tmp, data, _ = runs
    shutil.copytree(tmp / "run2", tmp_path / "resumed")
    script = train_py_in_float64(tmp_path)
    launch(data, tmp_path / "resumed", 1, "--resume", "--max_iters", "7", script=script)
    launch(data, tmp_path / "whole", 1, "--max_iters", "7", script=script)
    resumed = torch.load(tmp_path / "resumed" / "latest.pt", weights_only=True)
    whole = torch.load(tmp_path / "whole" / "latest.pt", weights_only=True)
    assert resumed["total_iters"] == whole["total_iters"] == 7
    assert resumed["epoch"] == whole["epoch"] == 2 and resumed["iter"] == whole["iter"] == 1
    same_networks(whole, resumed)


# Two mistakes the equivalence test must catch: every rank training on rank 0's share of the
# batch (half the global batch, twice), and a history pool per rank instead of one shared pool.
MISTAKES = {
    "rank 0's share on every rank": """
import distributed
batches = distributed.World.batches
def same_share(self, order, batch_size, start=0):
    rank, self.rank = self.rank, 0
    try:
        return batches(self, order, batch_size, start)
    finally:
        self.rank = rank
distributed.World.batches = same_share
""",
    "a pool per rank": """
import distributed
distributed.SharedPool.query = lambda self, images: self.pool.query(images.detach())
""",
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_the_equivalence_test_catches_a_wrong_split_or_pool(runs, tmp_path, mistake):
    tmp, data, _ = runs
    script = train_py_in_float64(tmp_path, MISTAKES[mistake])
    launch(data, tmp_path / "wrong", 2, "--max_iters", "5", script=script)
    one = torch.load(tmp / "run1" / "latest.pt", weights_only=True)
    wrong = torch.load(tmp_path / "wrong" / "latest.pt", weights_only=True)
    weights, _, outputs = difference(one, wrong)
    assert min(weights, outputs) > 1e4 * 1e-10, (weights, outputs)  # 4+ orders above tol
    with pytest.raises(AssertionError):
        same_networks(one, wrong)


def split(n_items, world, batch_size, start=0):
    """World.batches for every rank of a world of the given size."""
    out = []
    for rank in range(world):
        w = distributed.World()
        w.size, w.rank = world, rank
        out.append(w.batches(list(range(n_items)), batch_size, start))
    return out


@pytest.mark.parametrize("n_items", [12, 13, 14, 1067])
@pytest.mark.parametrize("world,batch_size", [(1, 1), (2, 2), (2, 4), (3, 3), (4, 8)])
def test_each_step_splits_the_one_process_batch_among_the_ranks(n_items, world, batch_size):
    ranks = split(n_items, world, batch_size)
    one = split(n_items, 1, batch_size)[0]
    assert all(len(r) == len(one) for r in ranks)  # every rank takes ceil(n / B) steps
    for k, batch in enumerate(one):
        together = [i for r in ranks for i in r[k]]  # rank 0's chunk, then rank 1's, ...
        assert len({len(r[k]) for r in ranks}) == 1  # equal shares: DDP averages equal means
        if len(batch) == batch_size or n_items % world == 0:
            assert together == batch  # the same items in the same order as one process
        else:  # a short last batch that does not divide: padded from the epoch's start
            assert together[:len(batch)] == batch and len(together) % world == 0
    assert split(n_items, world, batch_size, start=2) == [r[2:] for r in ranks]  # resume


def test_the_global_batch_must_divide_among_the_processes():
    w = distributed.World()
    w.size = 4
    with pytest.raises(ValueError, match="--batch_size 6 is the global batch .* multiple of 4"):
        w.check_batch(6)
    w.check_batch(8)


def _pool_worker(rank, port, result, root):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2",
                      RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    world = distributed.World()
    pool = distributed.SharedPool(ImagePool(2, seed=0), world)
    outs = [pool.query(torch.full((1, 1, 1, 1), 10.0 * step + rank)) for step in range(4)]
    result[rank] = torch.cat(outs).flatten().tolist()
    net = torch.nn.Linear(2, 2)
    torch.nn.init.constant_(net.weight, 1.0 + rank * 1e-6)  # rank 1's weights drifted
    try:
        world.check_same_weights([net])
        result[f"diverged {rank}"] = ""
    except distributed.Diverged as e:
        result[f"diverged {rank}"] = str(e)
    # the same files; --num_workers may differ, --lr may not
    args = argparse.Namespace(lr=2e-4 * (1 + 4 * rank), num_workers=rank, explicit=[])
    try:
        world.check_same(root, args)
    except ValueError as e:
        result[f"flags {rank}"] = str(e)
    dist.destroy_process_group()


def test_shared_pool_is_one_pool_and_diverged_ranks_stop_and_so_do_other_flags(tmp_path):
    port = 29500 + os.getpid() % 1000
    data = make_images(tmp_path / "data", n=2)
    with mp.Manager() as manager:
        result = manager.dict()
        mp.spawn(_pool_worker, args=(port, result, str(data)), nprocs=2)
        result = dict(result)
    # One process with the batches [0, 1], [10, 11], [20, 21], [30, 31] and one pool of 2:
    single = ImagePool(2, seed=0)
    expected = [single.query(torch.tensor([10.0 * s, 10.0 * s + 1]).view(2, 1, 1, 1))
                for s in range(4)]
    expected = torch.cat(expected).flatten().tolist()
    got = [v for s in range(4) for v in (result[0][s], result[1][s])]  # rank 0's, then rank 1's
    assert got == expected, "each rank must get its share of what ONE pool returns"
    assert "weights have diverged" in result["diverged 0"] and result["diverged 1"]
    assert result["flags 0"] == result["flags 1"] == (
        "rank 1 has --lr 0.001, rank 0 --lr 0.0002: every process must see the same dataset "
        "and flags (on several machines: the same files at the same path)")


def test_ctrl_c_under_torchrun_stops_every_rank_at_one_step_and_saves_once(tmp_path):
    data = make_images(tmp_path / "data", n=5)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           os.path.join(ROOT, "train.py"), "--dataroot", str(data), "--out",
           str(tmp_path / "run"), *FLAGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         cwd=ROOT, env=env)
    try:
        for line in p.stdout:  # wait for the first iterations, then press Ctrl-C
            if line.startswith("epoch 1/200 iter 2/3"):
                p.send_signal(signal.SIGINT)
                break
        out = p.communicate(timeout=120)[0]
    finally:
        if p.poll() is None:  # never leave workers behind: SIGINT reaches them through torchrun
            p.send_signal(signal.SIGINT)
            p.wait(60)
    assert out.count("stopping (SIGINT): every process ends after this step") == 1, out
    assert out.count("stopped (SIGINT) after") == 1, out  # rank 0 alone reports and saves
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert ckpt["total_iters"] >= 2
    assert not [f for f in os.listdir(tmp_path / "run") if f.endswith(".tmp")]
    workers = subprocess.run(["pgrep", "-f", str(tmp_path / "run")], capture_output=True,
                             text=True).stdout.split()
    assert workers == [], "orphaned workers still run"


CRASH_ONCE_AT_STEP_4 = """
import os
if os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0" and os.environ["RANK"] == "1":
    steps, step = [], torch.optim.Adam.step
    def step_then_crash(self, *a, **k):  # rank 1 dies in the middle of step 4 (2 Adam steps each)
        steps.append(1)
        if len(steps) == 7:
            os._exit(1)
        return step(self, *a, **k)
    torch.optim.Adam.step = step_then_crash
"""


def test_an_elastic_restart_resumes_from_the_last_checkpoint(runs, tmp_path):
    tmp, data, _ = runs
    script = train_py_in_float64(tmp_path, CRASH_ONCE_AT_STEP_4)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--max-restarts", "1", script, "--dataroot", str(data), "--out",
           str(tmp_path / "run"), *FLAGS, "--save_every", "2", "--max_iters", "5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resumed" in done.stdout and "1 epoch and 0 iterations done" in done.stdout  # step 3
    # the same as the uninterrupted 2-process run of 5 steps (saving more often changes nothing)
    same_networks(torch.load(tmp / "run2" / "latest.pt", weights_only=True),
                  torch.load(tmp_path / "run" / "latest.pt", weights_only=True))


def test_mixed_precision_works_under_torchrun(tmp_path):
    data = make_images(tmp_path / "data", n=5)
    out = launch(data, tmp_path / "run", 2, "--amp", "--max_iters", "2")
    assert "epoch 1/200 iter 2/3" in out
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert ckpt["total_iters"] == 2 and ckpt["args"]["amp"]


# ---- Faults: what a user reads, and what is left, when a process or torchrun goes wrong ----

WRITE_PID = """
import os
with open(os.path.join({folder!r}, "rank" + os.environ["RANK"] + ".pid"), "w") as f:
    f.write(str(os.getpid()))
"""


def workers(out):
    """The ids of processes whose command line names `out` (torchrun and its workers)."""
    found = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


class Job:
    """torchrun with 2 processes in the background (its output read line by line as it comes);
    on leaving, everything still running that names --out is killed: torchrun's process group,
    and each worker's (torchrun starts each worker in a session of its own)."""

    def __init__(self, tmp, data, *flags, launcher=(), env=()):
        self.tmp, self.out = tmp, tmp / "run"
        script = train_py_in_float64(tmp, WRITE_PID.format(folder=str(tmp)))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", *launcher, script, "--dataroot", str(data), "--out", str(self.out), *FLAGS,
               *flags]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **dict(env)}
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, cwd=ROOT, env=env, start_new_session=True)
        self.lines, self.text = queue.Queue(), ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(None)  # every writer of the pipe (torchrun, the workers) is gone

    def wait_for(self, start, timeout):
        """Read until a line starting with `start`; returns that line."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            assert line is not None, f"ended before {start!r}:\n{self.text}"
            self.text += line
            if line.startswith(start):
                return line

    def rest(self, timeout):
        """Everything until no process writes to the pipe any more; then torchrun's status."""
        deadline = time.monotonic() + timeout
        while (line := self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))):
            self.text += line
        return self.p.wait(max(deadline - time.monotonic(), 0.01))

    def pid(self, rank):
        return int((self.tmp / f"rank{rank}.pid").read_text())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for pid in [self.p.pid] + workers(self.out):
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.p.wait(30)


def test_a_rank_that_stops_answering_ends_the_job_within_the_timeout_naming_it(tmp_path):
    data = make_images(tmp_path / "data", n=5)
    with Job(tmp_path, data, "--timeout", "10", "--max_iters", "500") as job:
        job.wait_for("epoch 2/200 iter 1/3", 120)  # after the first epoch's save
        os.kill(job.pid(1), signal.SIGSTOP)  # a hung GPU, a dead network file system
        stopped = time.monotonic()
        line = job.wait_for("error:", 60)
        waited = time.monotonic() - stopped
        assert line.startswith("error: rank 1 answered nothing for 10 s (--timeout). "), line
        assert f"{job.out}/latest.pt holds the state saved at iteration 3" in line
        # --timeout, 5 s to learn who, and a loaded CPU's slack; rank 0 may have entered the
        # step's exchange a moment before rank 1 stopped, so the 10 s can start a little earlier
        assert 10 - 3 <= waited <= 10 + 5 + 30, waited  # not gloo's 30 minutes
        # torchrun now sends the stopped process SIGTERM, and SIGKILL 30 s later; not to wait,
        # let it go on: it finds rank 0 gone, and must not say so (rank 0 has said what matters)
        os.kill(job.pid(1), signal.SIGCONT)
        assert job.rest(20) != 0
    assert job.text.count("error:") == 1, job.text
    assert "train.py" not in job.text.split("error:")[1], job.text  # no traceback of ours
    assert checkpoints.load_checkpoint(str(job.out / "latest.pt"))["total_iters"] == 3
    assert workers(job.out) == []


def test_a_killed_rank_is_one_line_from_the_rank_left(tmp_path):
    data = make_images(tmp_path / "data", n=5)
    with Job(tmp_path, data, "--max_iters", "500") as job:
        job.wait_for("epoch 2/200 iter 1/3", 120)
        os.kill(job.pid(1), signal.SIGKILL)  # the out-of-memory killer picks rank 1
        assert job.rest(60) != 0
    # gloo's error (a 20-line traceback) becomes one line; torchrun's own report follows it
    lines = [line for line in job.text.splitlines() if "error" in line.lower()]
    assert lines[0] == ("error: rank 1 ended (a crash, a kill, or the out-of-memory killer?). "
                        f"{job.out}/latest.pt holds the state saved at iteration 3: go "
                        "on from it with --resume."), job.text
    assert job.text.count("error:") == 1 and "stopping" not in job.text, job.text
    assert "train.py" not in job.text.split("error:")[1], job.text  # no traceback of ours


HIDE_A_FILE_ON_RANK_1 = """
import os
import data
if os.environ["RANK"] == "1":  # rank 1 reads a copy of the dataset that lacks one image of X
    find_images = data.find_images
    data.find_images = lambda folder: find_images(folder)[:-1 if "trainA" in folder else None]
"""


def test_ranks_that_see_other_files_are_refused_before_out_is_made(tmp_path):
    data = make_images(tmp_path / "data", n=5)
    script = train_py_in_float64(tmp_path, HIDE_A_FILE_ON_RANK_1)
    out = launch(data, tmp_path / "run", 2, "--max_iters", "3", script=script, status=1)
    assert "error: rank 1 sees 4 images in X, rank 0 sees 5: every process must see the same " \
        "dataset and flags" in out, out
    assert out.count("error:") == 1 and "Traceback (most recent call last):\n  File \"" + \
        ROOT not in out
    assert not (tmp_path / "run").exists()  # a refusal leaves nothing behind


def test_a_refused_launch_leaves_out_as_it_was(tmp_path, monkeypatch):
    data = make_images(tmp_path / "data", n=5)
    # rank 0 of 2, without the exchanges: --batch_size 3 does not divide among 2 processes
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(distributed.World, "start", lambda self, *a: None)
    monkeypatch.setattr(distributed.World, "barrier", lambda self: None)
    for before in ([], ["notes.txt"]):  # no folder yet; a folder with a file of the user's
        out = tmp_path / f"run{len(before)}"
        for name in before:
            out.mkdir()
            (out / name).write_text("mine")
        with pytest.raises(SystemExit, match="error: --batch_size 3 is the global batch .* "
                                             "multiple of 2"):
            train.main(["--dataroot", str(data), "--out", str(out), *TINY, "--batch_size", "3"])
        assert (sorted(os.listdir(out)) if out.exists() else []) == before


def test_killing_torchrun_stops_its_workers_which_save_once(tmp_path):
    data = make_images(tmp_path / "data", n=5)
    with Job(tmp_path, data, "--n_epochs", "10000") as job:  # minutes, if nothing stops it
        job.wait_for("epoch 1/10100 iter 2/3", 120)
        os.kill(job.p.pid, signal.SIGKILL)  # the out-of-memory killer, a scheduler
        job.rest(60)  # the workers end (or this times out)
    assert "stopped (torchrun, the launcher, died) after" in job.text, job.text
    ckpt = checkpoints.load_checkpoint(str(job.out / "latest.pt"))  # whole: its digest checked
    assert 2 <= ckpt["total_iters"] < 100
    assert not [f for f in os.listdir(job.out) if f.endswith(".tmp")]
    assert workers(job.out) == []


def test_sigterm_to_one_process_ends_the_job_even_with_max_restarts(tmp_path):
    data = make_images(tmp_path / "data", n=5)
    with Job(tmp_path, data, "--max_iters", "8", launcher=["--max-restarts", "1"],
             env={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}) as job:
        job.wait_for("epoch 1/200 iter 2/3", 120)
        os.kill(job.pid(1), signal.SIGTERM)  # a scheduler preempting one task
        status = job.rest(120)
    # a deliberate stop: every process exits 0, so torchrun ends the job instead of restarting it
    assert status == 0, job.text
    assert job.text.count("stopping (SIGTERM to rank 1): every process ends after this step") \
        == 1, job.text
    assert "stopped (SIGTERM to rank 1) after" in job.text and "resumed" not in job.text
    assert 2 <= torch.load(job.out / "latest.pt", weights_only=True)["total_iters"] < 8


def test_a_save_that_fails_on_a_full_disk_says_so(tmp_path, monkeypatch):
    def write():  # what torch.save's failure becomes in checkpoints.save_checkpoint
        raise OSError("could not write run/latest.pt (unexpected pos 713600 vs 713492)")
    fake = types.SimpleNamespace(networks=[torch.nn.Linear(100, 100)] * 4,  # 4 x 40400 bytes
                                 writer=types.SimpleNamespace(out=str(tmp_path)))
    # 3 x (4 x 40400) bytes = 0.48 MB for weights and Adam's two averages; 0.1 MB free
    monkeypatch.setattr(shutil, "disk_usage", lambda path: types.SimpleNamespace(free=100_000))
    with pytest.raises(OSError, match=r"the disk holding .* is full \(0.1 MB free; a checkpoint "
                                      r"takes about 0.5 MB\): could not write"):
        run.Run.saving(fake, write)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: types.SimpleNamespace(free=10**9))
    with pytest.raises(OSError, match="^could not write"):  # room enough: another cause
        run.Run.saving(fake, write)


def test_a_single_run_whose_shell_has_exited_is_stopped_by_its_signal_not_by_torchrun(monkeypatch):
    # `nohup python train.py ... &` from a shell that then exits: the run's parent changes, but
    # no torchrun was there to die. A later SIGTERM is a SIGTERM (it said "torchrun ... died").
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    world, stop = distributed.World(), distributed.StopFlag()
    try:
        stop.parent = -1  # as if the shell that started this process had exited
        stop.handle(signal.SIGTERM, None)
        assert stop.orphaned and world.stopped_by(stop) == "SIGTERM"
        world.launched = True  # the same under torchrun: its death sent the signal
        assert world.stopped_by(stop) == "torchrun, the launcher, died"
    finally:
        stop.restore()
        world.close()
