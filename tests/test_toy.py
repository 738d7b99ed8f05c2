"""Worked examples for the toy domains (toy.py) and their ground-truth evaluation (evaluate.py)."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import distributed
import evaluate
import train
from toy import TOY_STYLES, is_toy, make_toy, render_toy, toy_content


def silhouette(img, style):
    """Where an image is not its domain's background: the shapes, whatever their colours."""
    return (np.asarray(img) != style["background"]).any(axis=-1)


def test_toy_images_are_the_same_for_the_same_seed():
    first = render_toy(toy_content(np.random.default_rng(7)), TOY_STYLES["Y"])
    again = render_toy(toy_content(np.random.default_rng(7)), TOY_STYLES["Y"])
    other = render_toy(toy_content(np.random.default_rng(8)), TOY_STYLES["Y"])
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_domains_share_the_shapes_and_differ_in_colours():
    rng = np.random.default_rng(0)
    contents = [toy_content(rng) for _ in range(20)]
    x = [render_toy(c, TOY_STYLES["X"]) for c in contents]
    y = [render_toy(c, TOY_STYLES["Y"]) for c in contents]
    # Content: each shape covers the same pixels in both styles (Y's stroke lies inside the shape).
    for img_x, img_y in zip(x, y):
        assert (silhouette(img_x, TOY_STYLES["X"]) == silhouette(img_y, TOY_STYLES["Y"])).all()
    # Style: X is mostly navy, (25 + 35 + 95) / 3 = 52 on average; Y mostly paper, about 227.
    mean_x = np.mean([np.asarray(i, dtype=float).mean() for i in x])
    mean_y = np.mean([np.asarray(i, dtype=float).mean() for i in y])
    assert mean_x < 100 < 180 < mean_y


def test_test_pairs_line_up_and_train_images_do_not(tmp_path):
    root = make_toy(str(tmp_path / "toy"), n_train=6, n_test=4, size=16)
    assert is_toy(root) and sorted(os.listdir(os.path.join(root, "testB"))) == [
        "0000.png", "0001.png", "0002.png", "0003.png"]

    def shapes(split, k):
        a = Image.open(os.path.join(root, f"{split}A", f"{k:04d}.png"))
        b = Image.open(os.path.join(root, f"{split}B", f"{k:04d}.png"))
        return silhouette(a, TOY_STYLES["X"]), silhouette(b, TOY_STYLES["Y"])

    for k in range(4):  # testB/k.png is testA/k.png drawn in Y's style: the ground truth of G
        a, b = shapes("test", k)
        assert (a == b).all()
    # trainA and trainB draw their contents independently (unpaired, as in the paper)
    assert not all((a == b).all() for a, b in (shapes("train", k) for k in range(6)))


def test_ground_truth_errors_and_baselines_by_hand():
    # Three images per domain, each 1 channel of 1x2 pixels; x[k] and y[k] show the same content.
    x = torch.tensor([[0.0, 1.0], [0.0, -1.0], [0.6, 0.0]]).view(3, 1, 1, 2)
    y = torch.tensor([[1.0, 1.0], [-1.0, 0.0], [0.3, -1.0]]).view(3, 1, 1, 2)
    G = torch.neg  # a translator that flips the sign
    F = torch.zeros_like  # one that paints everything grey
    e = evaluate.ground_truth_errors(G, F, x, y)
    # G(x) = [0, -1], [0, 1], [-0.6, 0] against y:
    #   |0-1| + |-1-1| + |0+1| + |1-0| + |-0.6-0.3| + |0+1| = 1 + 2 + 1 + 1 + 0.9 + 1 = 6.9
    #   6.9 / 6 = 1.15
    assert e["G"] == pytest.approx(1.15)
    # F(y) = 0 everywhere against x: 0 + 1 + 0 + 1 + 0.6 + 0 = 2.6; / 6 = 0.4333
    assert e["F"] == pytest.approx(2.6 / 6)
    # Input unchanged: |x - y| = 1 + 0 + 1 + 1 + 0.3 + 1 = 4.3; / 6 = 0.7167, both ways
    assert e["G input"] == e["F input"] == pytest.approx(4.3 / 6)
    # Mean image of Y, per pixel: [(1 - 1 + 0.3) / 3, (1 + 0 - 1) / 3] = [0.1, 0]
    #   |1-0.1| + |1-0| + |-1-0.1| + |0-0| + |0.3-0.1| + |-1-0| = 0.9 + 1 + 1.1 + 0 + 0.2 + 1 = 4.2
    #   4.2 / 6 = 0.7 (one mean over all pixels, 0.05, would give 4.3 / 6 instead;
    #   the mean image of X, [0.2, 0], would give 4.1 / 6)
    assert e["G mean"] == pytest.approx(0.7)
    # Mean image of X: [0.2, 0]; |x - it| = 0.2 + 1 + 0.2 + 1 + 0.4 + 0 = 2.8; / 6 = 0.4667
    assert e["F mean"] == pytest.approx(2.8 / 6)


def test_a_few_iterations_on_the_toy_train_and_evaluate(tmp_path, capsys, monkeypatch):
    root = make_toy(str(tmp_path / "toy"), n_train=4, n_test=2, size=24)
    out = str(tmp_path / "run")
    tiny = ["--dataroot", root, "--out", out, "--load_size", "24", "--crop_size", "24",
            "--ngf", "4", "--ndf", "4", "--n_blocks", "1", "--batch_size", "2", "--n_epochs", "1",
            "--n_epochs_decay", "1", "--n_samples", "2", "--print_every", "1"]
    assert train.main(tiny) == 0
    printed = capsys.readouterr().out
    assert "toy domains: flags not given take the toy's defaults" in printed
    assert "epoch 2/2 | L1 to ground truth: G(x)" in printed  # each epoch's log
    assert "2 test pairs | L1 to ground truth" in printed  # and the end
    assert os.path.exists(os.path.join(out, "index.html"))
    metrics = open(os.path.join(out, "metrics.csv")).read().splitlines()  # the page's curve
    assert metrics[0].startswith(  # each error beside the two baselines the log prints
        "epoch,L1 G(x) vs y,L1 G(x) vs y (input),L1 G(x) vs y (mean y),L1 F(y) vs x,"
        "L1 F(y) vs x (input),L1 F(y) vs x (mean x)") and len(metrics) == 3
    page = open(os.path.join(out, "index.html")).read()
    assert "metrics.png" in page and "lambda_cyc" in page  # the curve and the run's settings
    assert "Dashed: what learning nothing scores" in page  # the baselines on the curve
    assert "L1 G(x) vs y: input 1." in page and ", mean y 0." in page  # and their values
    # Without the FID network (as if not installed), the toy still has its ground truth.
    monkeypatch.setattr(evaluate.fid.importlib.util, "find_spec", lambda name: None)
    assert evaluate.main([os.path.join(out, "latest.pt")]) == 0
    printed = capsys.readouterr().out
    assert "(epoch 2), 2 test pairs: L1 to ground truth" in printed
    assert "note: FID/KID skipped: FID/KID need the FID Inception network" in printed


def test_the_toy_is_the_default_dataset():
    assert train.parse_args([]).dataroot == "toy"


def test_evaluate_names_an_unreadable_checkpoint(tmp_path):
    (tmp_path / "latest.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit, match="error: cannot read .*latest.pt: not a complete "
                                         "file written by torch.save$"):
        evaluate.main([str(tmp_path / "latest.pt")])  # not torch's advice to drop weights_only


def test_the_toy_trains_on_one_thread_unless_told_otherwise(tmp_path, monkeypatch, capsys):
    # Threads that wait for each other on a busy CPU made the toy run 4 times slower with 2
    # than with 1 (docs/speed.md); an OMP_NUM_THREADS the user set is kept.
    root = make_toy(str(tmp_path / "toy"), n_train=4, n_test=2, size=24)
    args = train.parse_args(["--dataroot", root, "--out", str(tmp_path / "run")])
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n))
    calls = []
    train.prepare(args, distributed.World())
    assert calls == [1] and "one thread" in capsys.readouterr().out
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    calls.clear()
    train.prepare(train.parse_args(["--dataroot", root]), distributed.World())
    assert calls == []
