"""Worked examples for train.py: the schedule of appendix 7.1, the two steps of the training loop,
and whole runs of the command line on tiny generated images: checkpoints, resume, Ctrl-C, errors."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import run as run_files
import train
from data import ImagePool
from train import discriminator_step, generator_step, linear_decay

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.paper
@pytest.mark.parametrize("epoch,expected", [
    (1, 1.0),  # constant for the first 100 epochs
    (100, 1.0),
    (101, 1 - 1 / 101),  # then 100 equal steps of 1/101: 0.990
    (150, 1 - 50 / 101),  # 0.505, half way down
    (200, 1 / 101),  # 0.0099: near zero at the last epoch (zero would be epoch 201)
])
def test_learning_rate_constant_100_epochs_then_linear_to_zero(epoch, expected):
    assert linear_decay(epoch, 100, 100) == pytest.approx(expected)


@pytest.mark.paper
def test_learning_rate_decays_by_equal_steps():
    steps = [linear_decay(e) - linear_decay(e + 1) for e in range(100, 200)]
    assert steps == pytest.approx([1 / 101] * 100)


class Scale(nn.Module):
    """A stand-in network: multiplies its input by one learnable number."""

    def __init__(self, factor):
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(factor))

    def forward(self, t):
        return self.factor * t


class Args:
    lambda_cyc, lambda_idt, lambda_gan, cycle = 10.0, 0.5, 1.0, "both"
    amp = compile = False


@pytest.mark.paper
def test_generator_step_wires_each_network_to_its_domain():
    # G doubles, F quarters, D_X and D_Y pass images through; x is all 1s, y all 3s
    G, F, D_X, D_Y = Scale(2.0), Scale(0.25), Scale(1.0), Scale(1.0)
    real_x, real_y = torch.ones(1, 3, 4, 4), torch.full((1, 3, 4, 4), 3.0)
    opt_G = torch.optim.Adam(list(G.parameters()) + list(F.parameters()))
    fake_x, fake_y, parts = generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, Args())
    assert fake_y.flatten()[0].item() == 2.0 and fake_x.flatten()[0].item() == 0.75  # G(x), F(y)
    assert parts["GAN(G)"].item() == pytest.approx(1.0)  # D_Y(G(x)) = 2: (2 - 1)^2
    assert parts["GAN(F)"].item() == pytest.approx(0.0625)  # D_X(F(y)) = 0.75: (0.75 - 1)^2
    assert parts["cyc_x"].item() == pytest.approx(0.5)  # F(G(x)) = 0.25 * 2 = 0.5: |0.5 - 1|
    assert parts["cyc_y"].item() == pytest.approx(1.5)  # G(F(y)) = 2 * 0.75 = 1.5: |1.5 - 3|
    # identity: G(y) = 6 vs y = 3 gives 3; F(x) = 0.25 vs x = 1 gives 0.75; 3 + 0.75 = 3.75
    # (G(x) vs y and F(y) vs x, the usual mix-up, would give |2 - 3| + |0.75 - 1| = 1.25)
    assert "idt" in parts, "generator_step must make idt_y = G(y), idt_x = F(x) when lambda_idt > 0"
    assert parts["idt"].item() == pytest.approx(3.75)


def tiny_nets():
    torch.manual_seed(0)
    G, F = train.Generator(ngf=4, n_blocks=1), train.Generator(ngf=4, n_blocks=1)
    D_X, D_Y = train.Discriminator(ndf=4), train.Discriminator(ndf=4)
    opt_G = torch.optim.Adam(list(G.parameters()) + list(F.parameters()), 2e-4, (0.5, 0.999))
    opt_D = torch.optim.Adam(list(D_X.parameters()) + list(D_Y.parameters()), 2e-4, (0.5, 0.999))
    return G, F, D_X, D_Y, opt_G, opt_D


def snapshot(*nets):
    return [p.detach().clone() for net in nets for p in net.parameters()]


@pytest.mark.paper
def test_generator_step_leaves_the_discriminators_untouched():
    G, F, D_X, D_Y, opt_G, opt_D = tiny_nets()
    real_x, real_y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    before_D, before_G = snapshot(D_X, D_Y), snapshot(G, F)
    generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, Args())
    assert all(torch.equal(a, b) for a, b in zip(before_D, snapshot(D_X, D_Y))), \
        "the generator step changed D_X or D_Y: only opt_G's weights (G, F) may move"
    assert all(p.grad is None for p in list(D_X.parameters()) + list(D_Y.parameters())), \
        "D_X, D_Y got gradients in the generator step: freeze them with requires_grad_(False)"
    assert not all(torch.equal(a, b) for a, b in zip(before_G, snapshot(G, F))), \
        "G and F did not change: the generator step must call opt_G.step()"
    assert all(p.requires_grad for p in D_X.parameters()), \
        "D_X stays frozen after the generator step: requires_grad_(True) again for its own step"


@pytest.mark.paper
def test_discriminator_step_leaves_the_generators_untouched():
    G, F, D_X, D_Y, opt_G, opt_D = tiny_nets()
    real_x, real_y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    fake_x, fake_y, _ = generator_step(G, F, D_X, D_Y, opt_G, real_x, real_y, Args())
    assert all(p.grad is not None for p in G.parameters()), \
        "G has no gradient after its step: zero_grad() belongs before backward(), not after step()"
    grads_G = [p.grad.clone() for p in list(G.parameters()) + list(F.parameters())]
    before_G, before_D = snapshot(G, F), snapshot(D_X, D_Y)
    losses = discriminator_step(D_X, D_Y, opt_D, ImagePool(50), ImagePool(50), real_x, real_y,
                                fake_x, fake_y)
    assert all(torch.equal(a, b) for a, b in zip(before_G, snapshot(G, F))), \
        "the discriminator step changed G or F: only opt_D's weights (D_X, D_Y) may move"
    assert all(torch.equal(g, p.grad) for g, p in zip(grads_G, list(G.parameters()) +
                                                       list(F.parameters()))), \
        "D's loss reached G or F: the fakes must be detached (the pool detaches them)"
    assert not all(torch.equal(a, b) for a, b in zip(before_D, snapshot(D_X, D_Y))), \
        "D_X and D_Y did not change: the discriminator step must call opt_D.step()"
    assert set(losses) == {"D_X", "D_Y"}


def make_images(root, n=4, size=28):
    """Domain X: dark squares on light ground; Y: light squares on dark. Train and test."""
    rng = np.random.default_rng(0)
    for folder, n_images in (("trainA", n), ("trainB", n + 1), ("testA", 2), ("testB", 2)):
        os.makedirs(root / folder)
        for i in range(n_images):
            a = np.full((size, size, 3), 200 if folder.endswith("A") else 40, np.uint8)
            r, c = rng.integers(0, size - 8, 2)
            a[r:r + 8, c:c + 8] = 255 - a[0, 0]
            Image.fromarray(a).save(root / folder / f"{i}.png")
    return root


TINY = ["--crop_size", "24", "--load_size", "28", "--ngf", "4", "--ndf", "4", "--n_blocks", "1",
        "--num_workers", "0", "--n_samples", "2", "--print_every", "2"]


def run(tmp_path, *flags):
    return train.main(["--dataroot", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                       *TINY, *flags])


@pytest.fixture
def data_dir(tmp_path):
    return make_images(tmp_path / "data")


def test_a_run_writes_checkpoint_samples_log_curves_and_gallery(tmp_path, data_dir, capsys):
    assert run(tmp_path, "--n_epochs", "1", "--n_epochs_decay", "1") == 0
    out = tmp_path / "run"
    ckpt = torch.load(out / "latest.pt", weights_only=True)
    assert {"G", "F", "D_X", "D_Y", "opt_G", "opt_D", "epoch", "iter", "args"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["total_iters"] == 10  # 2 epochs of max(4, 5) images
    assert ckpt["args"]["ngf"] == 4
    grid = Image.open(out / "samples" / "epoch_002.png")
    assert grid.size == (3 * 24, 4 * 24)  # real | fake | rec, for 2 test images of each domain
    assert (out / "loss_curves.png").exists()
    rows = (out / "loss_log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,iter,total_iter,GAN(G),GAN(F),cyc_x,cyc_y,idt,D_X,D_Y")
    assert len(rows) == 1 + 2 * 3  # lines at iterations 2, 4 and 5 of each epoch
    html = (out / "index.html").read_text()
    assert "samples/epoch_001.png" in html and "samples/epoch_002.png" in html
    assert "<b>This run:</b> finished: 2 of 2 epochs" in html  # the page's last state
    log = capsys.readouterr().out
    assert "--lambda_cyc 10.0" in log  # every setting is printed at the start
    assert "epoch 1/2 iter 2/5 | GAN(G)" in log and "s/it | ETA" in log


def test_counts_in_the_log_agree_with_their_nouns(tmp_path, data_dir, capsys):
    assert run(tmp_path, "--n_epochs", "1", "--n_epochs_decay", "0") == 0
    log = capsys.readouterr().out
    assert "5 iterations per epoch, 1 epoch;" in log  # not "1 epochs"
    assert "finished after 5 iterations this run (1 epoch done)" in log


def test_the_page_of_a_run_stopped_early_says_where_it_stopped(tmp_path, data_dir):
    assert run(tmp_path, "--n_epochs", "1", "--n_epochs_decay", "1", "--max_iters", "7") == 0
    html = (tmp_path / "run" / "index.html").read_text()
    assert "<b>This run:</b> stopped at epoch 2 of 2, iteration 2; --resume continues it" in html


def weights(path):
    ckpt = torch.load(path, weights_only=True)
    return {f"{net}.{k}": v for net in ("G", "F", "D_X", "D_Y") for k, v in ckpt[net].items()}


@pytest.mark.parametrize("stop_after", [5, 3])  # after epoch 1 of 2, and inside epoch 1
def test_resumed_run_ends_with_exactly_the_uninterrupted_weights(tmp_path, data_dir, stop_after):
    flags = ["--n_epochs", "1", "--n_epochs_decay", "1", "--pool_size", "2"]
    run(tmp_path, *flags)
    whole = weights(tmp_path / "run" / "latest.pt")
    os.rename(tmp_path / "run", tmp_path / "whole")
    run(tmp_path, *flags, "--max_iters", str(stop_after))
    stopped = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert stopped["total_iters"] == stop_after
    run(tmp_path, "--resume")  # settings come back from the checkpoint
    resumed = weights(tmp_path / "run" / "latest.pt")
    differ = [k for k in whole if not torch.equal(whole[k], resumed[k])]
    assert not differ, (f"after --resume, {len(differ)} weights differ from the uninterrupted "
                        f"run's, e.g. {differ[:3]}: save and restore everything that decides the "
                        "next step (optimizers, pools, random state, epoch and iteration)")
    rows = (tmp_path / "run" / "loss_log.csv").read_text().splitlines()
    assert rows == (tmp_path / "whole" / "loss_log.csv").read_text().splitlines()[:1] + rows[1:]


def test_existing_run_needs_resume_and_resume_refuses_conflicting_flags(tmp_path, data_dir):
    run(tmp_path, "--max_iters", "1")
    with pytest.raises(SystemExit, match="--resume"):
        run(tmp_path, "--max_iters", "1")
    with pytest.raises(SystemExit, match="--ngf 8 differs from the checkpoint's 4"):
        train.main(["--dataroot", str(data_dir), "--out", str(tmp_path / "run"), "--resume",
                    "--ngf", "8"])


def test_checkpoint_that_would_run_code_is_refused(tmp_path, data_dir):
    os.makedirs(tmp_path / "run")
    torch.save({"G": Args()}, tmp_path / "run" / "latest.pt")  # a pickled object, not weights
    with pytest.raises(SystemExit, match="refused: it holds pickled Python objects"):
        run(tmp_path, "--resume")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_dir, monkeypatch):
    calls = []

    def objective_going_nan(*args, **kwargs):
        total, parts = generator_objective(*args, **kwargs)
        calls.append(1)
        if len(calls) == 4:
            total = total * float("nan")
            parts["GAN(G)"] = parts["GAN(G)"] * float("nan")
        return total, parts

    generator_objective = train.generator_objective
    monkeypatch.setattr(train, "generator_objective", objective_going_nan)
    with pytest.raises(SystemExit, match="NaN or inf at epoch 1, iteration 4"):
        run(tmp_path, "--save_every", "3")
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert ckpt["total_iters"] == 3
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values())


def test_bad_flags_get_one_line_errors(tmp_path, data_dir, monkeypatch, capsys):
    for flags, message in ((["--crop_size", "30"], "multiple of 4"),
                           (["--crop_size", "64", "--load_size", "32"], "smaller than --crop_size"),
                           (["--batch_size", "0"], "at least 1"),
                           (["--crop_size", "16"], "at least 24")):
        with pytest.raises(SystemExit):
            train.parse_args(["--dataroot", str(data_dir), *flags])
        assert message in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="--cuda: no GPU is visible"):
        run(tmp_path, "--cuda")
    with pytest.raises(SystemExit, match="--device banana: not a device name"):
        run(tmp_path, "--device", "banana")


def test_ctrl_c_saves_latest_and_the_run_resumes(tmp_path, data_dir):
    cmd = [sys.executable, os.path.join(ROOT, "train.py"), "--dataroot", str(data_dir),
           "--out", str(tmp_path / "run"), *TINY, "--print_every", "1", "--num_workers", "1"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    for line in p.stdout:  # wait for the first iterations, then press Ctrl-C
        if line.startswith("epoch 1/200 iter 2/5"):
            p.send_signal(signal.SIGINT)
            break
    out = p.communicate(timeout=60)[0]
    assert p.returncode == 130, out
    assert "saving latest.pt" in out and "Traceback" not in out
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert ckpt["total_iters"] >= 2
    assert run(tmp_path, "--resume", "--max_iters", str(ckpt["total_iters"] + 1)) == 0


@pytest.mark.parametrize("flags, amp, hinted", [(["amx_bf16"], [], True),
                                                 (["amx_bf16"], ["--amp"], False),
                                                 ([], [], False)])
def test_a_cpu_with_native_bfloat16_is_told_about_amp(tmp_path, data_dir, capsys, monkeypatch,
                                                       flags, amp, hinted):
    # The paper's float32 stays the default; where the CPU has bfloat16 arithmetic (and --amp is
    # 1.3-2x faster, docs/speed.md) the run says so once, and not when --amp is on or pointless.
    monkeypatch.setattr(run_files, "native_bfloat16_flags", lambda: flags)
    assert run(tmp_path, *amp, "--max_iters", "1") == 0
    said = capsys.readouterr().out
    assert ("this CPU has native bfloat16 (amx_bf16): --amp trains 1.3-2x faster" in said) == hinted
    # A run that is refused says only why: the hint comes after the checks, with the settings.
    (tmp_path / "run").rename(tmp_path / "old")
    (tmp_path / "run").write_text("a file, not a folder")
    with pytest.raises(SystemExit, match="error: --out"):
        run(tmp_path, *amp, "--max_iters", "1")
    assert "native bfloat16" not in capsys.readouterr().out


def test_amp_trains_and_resumes_in_either_precision_with_float32_weights(tmp_path, data_dir):
    # --amp runs the forward passes in bfloat16 on the CPU; the weights and Adam's state stay
    # float32 (autocast casts copies), so a checkpoint is the same kind of file either way and a
    # run may switch precision on --resume.
    assert run(tmp_path, "--amp", "--max_iters", "3") == 0
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert ckpt["args"]["amp"] and ckpt["total_iters"] == 3
    tensors = [v for net in ("G", "F", "D_X", "D_Y") for v in ckpt[net].values()]
    tensors += [v for opt in ("opt_G", "opt_D") for s in ckpt[opt]["state"].values()
                for v in s.values() if v.dim() > 0]  # exp_avg, exp_avg_sq
    assert {t.dtype for t in tensors} == {torch.float32}
    assert all(torch.isfinite(t).all() for t in tensors)
    assert run(tmp_path, "--resume", "--max_iters", "4") == 0  # a resumed run keeps --amp
    assert torch.load(tmp_path / "run" / "latest.pt", weights_only=True)["args"]["amp"]
    assert run(tmp_path, "--resume", "--no-amp", "--max_iters", "5") == 0  # on in fp32
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert not ckpt["args"]["amp"] and ckpt["total_iters"] == 5
    assert run(tmp_path, "--resume", "--amp", "--max_iters", "7") == 0  # and back to bfloat16
    assert torch.load(tmp_path / "run" / "latest.pt", weights_only=True)["total_iters"] == 7
