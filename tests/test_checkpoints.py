"""Never lose a run: worked examples of kills, full disks, corrupt files, two runs on one folder,
NaNs, closed terminals, and every bad flag ending in one line (checkpoints.py, train.py)."""
import os
import resource
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

import checkpoints
import train
from data import ImagePool
from test_train import TINY, make_images, run, weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWO_EPOCHS = ["--n_epochs", "1", "--n_epochs_decay", "1", "--save_epoch_freq", "1"]


@pytest.fixture
def data_dir(tmp_path):
    return make_images(tmp_path / "data")


def python(tmp_path, code, *flags, limit_bytes=None, wait_for=None, send=None, nohup=False):
    """Run train.main(flags) in a fresh process after `code`; optionally with a file-size limit
    (a disk that fills part-way through a write) or a signal sent once a line is printed."""
    script = textwrap.dedent(code) + "\nimport sys, train\nsys.exit(train.main(sys.argv[1:]))\n"
    cmd = [sys.executable, "-c", script, "--dataroot", str(tmp_path / "data"), "--out",
           str(tmp_path / "run"), *TINY, *flags]

    def start():
        # A terminal session's signals, even where pytest itself runs under nohup (which would
        # leave SIGHUP ignored, and train.py keeps an ignored SIGHUP ignored).
        signal.signal(signal.SIGHUP, signal.SIG_IGN if nohup else signal.SIG_DFL)
        if limit_bytes is not None:  # writes past the limit fail with "File too large", as
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes to a full disk fail
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=start)
    for line in p.stdout if wait_for else ():
        if line.startswith(wait_for):
            p.send_signal(send)
            if not nohup:
                break
            wait_for, send = "epoch 1/200 iter 4/5", signal.SIGTERM  # then stop it for good
    out = p.communicate(timeout=120)[0]
    return p.returncode, out


def no_tmp_files(folder):
    return [f for f in os.listdir(folder) if f.endswith(".tmp")] == []


# --- Checkpoint files -------------------------------------------------------------------------

def test_a_kill_inside_torch_save_keeps_the_previous_checkpoint_and_no_tmp(tmp_path, monkeypatch):
    path = str(tmp_path / "latest.pt")
    checkpoints.save_checkpoint(path, {"epoch": 1, "w": torch.ones(3)})

    class Killed(BaseException):  # what a signal handler raising at any moment looks like
        pass

    def killed_mid_write(obj, f):
        f.write(b"half a checkpoint")
        raise Killed

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(Killed):
        checkpoints.save_checkpoint(path, {"epoch": 2, "w": torch.zeros(3)})
    assert torch.load(path, weights_only=True)["epoch"] == 1  # the last good one is intact
    assert os.listdir(tmp_path) == ["latest.pt"]  # and the half-written file is gone


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"),
                                     RuntimeError("PytorchStreamWriter failed writing file")])
def test_a_failed_write_is_one_clear_oserror(tmp_path, monkeypatch, failure):
    path = str(tmp_path / "latest.pt")
    checkpoints.save_checkpoint(path, {"epoch": 1})

    def fails(obj, f):
        f.write(b"part")
        raise failure

    monkeypatch.setattr(torch, "save", fails)
    with pytest.raises(OSError, match=r"could not write .*latest.pt .*previous checkpoint is "
                                      r"intact") as e:
        checkpoints.save_checkpoint(path, {"epoch": 2})
    assert "\n" not in str(e.value)
    assert os.listdir(tmp_path) == ["latest.pt"]


def test_a_flipped_bit_inside_a_tensor_is_detected(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    state = {"G": {"w": torch.arange(64, dtype=torch.float32)}, "F": {}, "D_X": {}, "D_Y": {},
             "args": {}}
    checkpoints.save_checkpoint(path, state)
    data = bytearray(open(path, "rb").read())
    at = data.find(torch.arange(64, dtype=torch.float32).numpy().tobytes())
    assert at > 0  # torch stores tensors uncompressed: the bytes of 0.0, 1.0, 2.0, ...
    data[at + 4 * 10] ^= 0x01  # 10.0 becomes 10.000001: the zip format does not notice
    open(path, "wb").write(bytes(data))
    assert torch.load(path, weights_only=True)["G"]["w"][10] != 10.0  # loads silently
    with pytest.raises(checkpoints.CheckpointError, match="corrupt: its tensors do not match"):
        checkpoints.load_checkpoint(path)


def test_a_corrupt_latest_names_the_newest_good_kept_copy(tmp_path, data_dir):
    run(tmp_path, *TWO_EPOCHS)
    out = tmp_path / "run"
    (out / "latest.pt").write_bytes((out / "latest.pt").read_bytes()[:1000])  # truncated
    with pytest.raises(SystemExit, match=r"cannot read .*latest.pt: not a complete file .*newest "
                                         r"good kept copy is .*epoch_002.pt: `cp "):
        run(tmp_path, "--resume")
    os.replace(out / "epoch_002.pt", out / "latest.pt")  # what the message says to do
    assert run(tmp_path, "--resume") == 0


@pytest.mark.parametrize("content,message", [
    (torch.ones(3), "not a train.py checkpoint: it holds a Tensor"),
    ({"model.1.weight": torch.ones(1)}, "one generator's weights .*: translate.py applies it"),
])
def test_resume_from_a_file_that_is_not_a_checkpoint(tmp_path, data_dir, content, message):
    os.makedirs(tmp_path / "run")
    torch.save(content, tmp_path / "run" / "latest.pt")
    with pytest.raises(SystemExit, match=message):
        run(tmp_path, "--resume")


def test_a_refused_pickle_is_one_plain_line(tmp_path, data_dir):
    os.makedirs(tmp_path / "run")
    torch.save({"G": ImagePool(1)}, tmp_path / "run" / "latest.pt")  # an object, not weights
    with pytest.raises(SystemExit) as e:
        run(tmp_path, "--resume")
    message = str(e.value.code)
    assert "refused: it holds pickled Python objects (data.ImagePool)" in message
    assert "\n" not in message and "\x1b" not in message and "weights_only" not in message


# --- Kills, full disks, two runs ------------------------------------------------------------

KILL_AT_EPOCH_COPY = """
    import os, signal, torch
    save = torch.save
    def save_or_die(obj, f):
        if getattr(f, "name", "").endswith("epoch_001.pt.tmp"):
            f.write(b"half")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)  # the power goes out mid-save
        save(obj, f)
    torch.save = save_or_die
"""


def test_a_kill_while_the_kept_copy_is_written_loses_no_checkpoint(tmp_path, data_dir):
    code, out = python(tmp_path, KILL_AT_EPOCH_COPY, *TWO_EPOCHS, "--save_every", "2")
    assert code == -signal.SIGKILL, out
    assert not (tmp_path / "run" / "epoch_001.pt").exists()
    assert run(tmp_path, "--resume") == 0
    files = os.listdir(tmp_path / "run")
    assert {"epoch_001.pt", "epoch_002.pt", "latest.pt"} <= set(files)  # all it promised
    assert no_tmp_files(tmp_path / "run")  # the dead run's half file is cleaned up
    resumed = weights(tmp_path / "run" / "latest.pt")
    os.rename(tmp_path / "run", tmp_path / "killed")
    run(tmp_path, *TWO_EPOCHS, "--save_every", "2")
    whole = weights(tmp_path / "run" / "latest.pt")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)  # bit-exact


def test_a_full_disk_during_a_save_is_one_line_and_keeps_the_last_checkpoint(tmp_path, data_dir):
    run(tmp_path, "--max_iters", "2")
    before = (tmp_path / "run" / "latest.pt").read_bytes()
    log_before = (tmp_path / "run" / "loss_log.csv").read_text()
    # The checkpoint is about 1.4 MB: a disk with 300 KB left fills in the middle of it.
    code, out = python(tmp_path, "", "--resume", "--max_iters", "4", limit_bytes=300_000)
    assert code == 1, out
    assert out.strip().splitlines()[-1].startswith("error: could not write")
    assert "Traceback" not in out
    assert (tmp_path / "run" / "latest.pt").read_bytes() == before
    assert no_tmp_files(tmp_path / "run")
    # A disk that is already full at --resume: one line, and nothing is spoiled.
    code, out = python(tmp_path, "", "--resume", "--max_iters", "4", limit_bytes=0)
    assert code == 1 and "Traceback" not in out and out.strip().startswith("error: --out"), out
    assert (tmp_path / "run" / "latest.pt").read_bytes() == before
    assert (tmp_path / "run" / "loss_log.csv").read_text().startswith(log_before[:200])


def test_a_second_run_on_the_same_folder_is_refused_and_a_killed_run_leaves_no_lock(tmp_path,
                                                                                    data_dir):
    first = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "train.py"), "--dataroot", str(data_dir), "--out",
         str(tmp_path / "run"), *TINY], stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        for line in first.stdout:
            if line.startswith("epoch 1/"):
                break
        with pytest.raises(SystemExit, match=rf"in use by another training run \(pid "
                                             rf"{first.pid} on .*train.py"):
            run(tmp_path, "--max_iters", "1")
    finally:
        first.kill()
        first.wait()
    assert run(tmp_path, "--max_iters", "1") == 0  # killed: the lock went with it


def test_a_closed_terminal_saves_like_sigterm(tmp_path, data_dir):
    code, out = python(tmp_path, "", "--print_every", "1", wait_for="epoch 1/200 iter 2/5",
                       send=signal.SIGHUP)
    assert code == 128 + signal.SIGHUP, out
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert ckpt["total_iters"] >= 2


def test_a_run_started_with_nohup_keeps_running_when_the_terminal_closes(tmp_path, data_dir):
    code, out = python(tmp_path, "", "--print_every", "1", wait_for="epoch 1/200 iter 2/5",
                       send=signal.SIGHUP, nohup=True)
    # SIGHUP at iteration 2 changed nothing: the run went on to iteration 4, where SIGTERM
    # stopped it (a run stopped by SIGHUP would have exited with 129 at iteration 3)
    assert code == 128 + signal.SIGTERM, out


# --- NaN, the schedule on resume, flags --------------------------------------------------------

def networks_that_go_nan_at_once(make_networks):
    """train.make_networks whose first update of G makes a weight NaN."""
    def networks(args, device):
        nets = make_networks(args, device)
        step = nets[4].step

        def bad_step(*a, **k):
            step(*a, **k)
            with torch.no_grad():
                next(nets[0].parameters()).fill_(float("nan"))
        nets[4].step = bad_step
        return nets
    return networks


def test_resuming_into_a_nan_at_once_points_to_the_newest_kept_copy(tmp_path, data_dir,
                                                                    monkeypatch):
    # 2 epochs of 5 iterations, a kept copy after each: epoch_001.pt and epoch_002.pt
    assert run(tmp_path, "--n_epochs", "2", "--n_epochs_decay", "1", "--max_iters", "10",
               "--save_epoch_freq", "1") == 0
    monkeypatch.setattr(train, "make_networks", networks_that_go_nan_at_once(train.make_networks))
    latest, kept = tmp_path / "run" / "latest.pt", tmp_path / "run" / "epoch_002.pt"
    with pytest.raises(SystemExit) as e:  # latest.pt (iteration 10) is finite, yet NaNs at once
        run(tmp_path, "--resume", "--lr", "1e-4")
    assert "holds iteration 10, whose weights were finite but may already be on their way" in \
        str(e.value)
    assert f"this run met the NaN before its next save: go back to the newest kept copy, `cp " \
           f"{kept} {latest}`, then --resume" in str(e.value)
    (tmp_path / "run" / "epoch_001.pt").unlink()
    kept.unlink()
    with pytest.raises(SystemExit, match="no kept copy epoch_NNN.pt is there to go back to"):
        run(tmp_path, "--resume", "--lr", "1e-4")


def test_a_nan_in_the_weights_stops_and_latest_holds_finite_weights_from_before(
        tmp_path, data_dir, monkeypatch, capsys):
    make_networks, steps = train.make_networks, []

    def networks_whose_4th_update_goes_nan(args, device):
        nets = make_networks(args, device)
        opt_G = nets[4]
        step = opt_G.step

        def bad_step(*a, **k):  # the losses of step 4 are finite; the update that follows is not
            step(*a, **k)
            steps.append(1)
            if len(steps) == 4:
                with torch.no_grad():
                    next(nets[0].parameters()).fill_(float("nan"))

        opt_G.step = bad_step
        return nets

    monkeypatch.setattr(train, "make_networks", networks_whose_4th_update_goes_nan)
    with pytest.raises(SystemExit, match=r"NaN or inf at epoch 1, iteration 4 .* stopped without "
                                         r"saving it. .*latest.pt holds iteration 2, whose "
                                         r"weights were finite but may already be on their way to "
                                         r"the NaN: go on from it with --resume. Try a smaller "
                                         r"--lr"):
        run(tmp_path, "--save_every", "2")
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert ckpt["total_iters"] == 2
    assert all(torch.isfinite(v).all() for net in ("G", "F", "D_X", "D_Y")
               for v in ckpt[net].values())
    monkeypatch.undo()
    assert run(tmp_path, "--resume", "--lr", "1e-4", "--max_iters", "5") == 0  # the advice works
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert ckpt["args"]["lr"] == 1e-4 and ckpt["opt_G"]["param_groups"][0]["lr"] == 1e-4


def test_extending_a_finished_run_recomputes_the_schedule_and_says_so(tmp_path, data_dir, capsys):
    run(tmp_path, "--n_epochs", "1", "--n_epochs_decay", "1")  # epoch 2 trained at lr * 1/2
    capsys.readouterr()
    run(tmp_path, "--resume", "--n_epochs_decay", "3")  # now 1 + 3 epochs: 2 more
    out = capsys.readouterr().out
    # the new schedule: epoch 3 of 1 + 3 trains at 1 - (3 - 1) / (3 + 1) = 0.5 of 2e-4 = 1e-4
    assert "epoch 2 trained at 0.0001, epoch 3 trains at 0.0001" in out
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert ckpt["epoch"] == 4
    rates = [row.split(",")[-1] for row in
             (tmp_path / "run" / "loss_log.csv").read_text().splitlines()[1:]]
    # epochs 1..4 at 1, 1/2 (old schedule), then 1/2, 1/4 (new): 2e-4, 1e-4, 1e-4, 5e-5
    assert [rates[i] for i in (0, 3, 6, 9)] == ["0.0002", "0.0001", "0.0001", "5e-05"]


@pytest.mark.parametrize("flags,message", [
    (["--seed", "-1"], "--seed -1: must not be negative"),
    (["--num_workers", "-2"], "--num_workers -2: must not be negative"),
    (["--pool_size", "-5"], "--pool_size -5: must not be negative"),
    (["--lr", "0"], "--lr 0.0: must be a positive number"),
    (["--lr", "nan"], "--lr nan: must be a positive number"),
    (["--beta1", "1.5"], "--beta1 1.5: Adam's beta1 lies in"),
    (["--max_iters", "0"], "--max_iters 0: must be at least 1"),
])
def test_meaningless_flags_are_refused_in_one_line(flags, message, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(flags)
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 2  # usage line + error line


def test_an_output_folder_that_is_a_file_or_unwritable(tmp_path, data_dir, monkeypatch):
    (tmp_path / "run").write_text("not a folder")
    with pytest.raises(SystemExit, match=r"--out .*run is a file, not a folder"):
        run(tmp_path)
    os.remove(tmp_path / "run")

    def read_only(*args, **kwargs):  # root ignores file modes, so the refusal is simulated
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "makedirs", read_only)
    with pytest.raises(SystemExit, match=r"--out .*run: cannot write there \(Permission denied"):
        run(tmp_path)


def test_a_dataroot_that_is_a_file_or_holds_no_decodable_image(tmp_path, data_dir):
    (tmp_path / "data.zip").write_bytes(b"PK")
    with pytest.raises(SystemExit) as e:
        train.main(["--dataroot", str(tmp_path / "data.zip"), "--out", str(tmp_path / "run")])
    assert str(e.value.code).startswith("error: --dataroot") and "\n" not in str(e.value.code)
    for f in os.listdir(data_dir / "trainA"):  # every image of X replaced by junk
        (data_dir / "trainA" / f).write_bytes(b"not an image")
    with pytest.raises(SystemExit) as e:
        run(tmp_path)
    assert "trainA" in str(e.value.code) and "\n" not in str(e.value.code)
