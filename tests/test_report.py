"""Worked examples for report.py: round tick values, the metrics log, the curves' axes, and the
results page (index.html) a run writes: every grid linked, latest first, big enough to see."""
import re

import numpy as np
import pytest
from PIL import Image

import report


def test_ticks_are_one_two_or_five_times_a_power_of_ten():
    # 1234 / 4 steps = 308.5 a step; 100 and 200 are too small, 500 is the first round step
    assert report.ticks(1234) == [0, 500, 1000, 1500]
    # 0.73 / 4 = 0.1825: 0.1 too small, 0.2 it is; 0.73 / 0.2 = 3.65, so 4 steps reach 0.8
    assert report.ticks(0.73) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8])
    # epochs: 3 / 5 = 0.6 would give steps of 1.0 anyway; 1 / 5 = 0.2 becomes 1 (no epoch 0.2)
    assert report.ticks(3, 5, integer=True) == [0, 1, 2, 3]
    assert report.ticks(1, 5, integer=True) == [0, 1]
    assert report.ticks(0) == report.ticks(1)  # nothing to show yet: a 0..1 axis, no error


def test_append_metrics_adds_a_row_per_call_and_a_column_per_new_name(tmp_path):
    report.append_metrics(tmp_path, 1, {"L1 G(x) vs y": 0.25, "L1 F(y) vs x": 0.125})
    report.append_metrics(tmp_path, 2, {"L1 G(x) vs y": 0.0625, "L1 F(y) vs x": 0.5})
    report.append_metrics(tmp_path, 2, {"FID G": 80.1})  # evaluated later: a new column
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "epoch,L1 G(x) vs y,L1 F(y) vs x,FID G",
        "1,0.25,0.125,",
        "2,0.0625,0.5,",
        "2,,,80.1"]
    assert report.read_metrics(tmp_path / "metrics.csv") == {
        "L1 G(x) vs y": [(1, 0.25), (2, 0.0625)], "L1 F(y) vs x": [(1, 0.125), (2, 0.5)],
        "FID G": [(2, 80.1)]}


def test_a_repeated_epoch_counts_once_with_its_later_value(tmp_path):
    # a run that crashed after epoch 3's metrics but before its checkpoint does epoch 3 again
    for epoch, value in ((2, 0.5), (3, 0.25), (3, 0.125)):
        report.append_metrics(tmp_path, epoch, {"L1 G(x) vs y": value})
    assert report.read_metrics(tmp_path / "metrics.csv") == {"L1 G(x) vs y": [(2, 0.5), (3, 0.125)]}


def dark(img, box):
    """How many pixels of a (left, top, right, bottom) region are near black: text."""
    return int((np.asarray(img.crop(box).convert("L")) < 100).sum())


def test_loss_curves_have_tick_labels_on_both_axes(tmp_path):
    rows = [{"epoch": 1, "iter": i, "total_iter": i, "GAN(G)": 0.5, "GAN(F)": 0.4, "cyc_x": 0.9,
             "cyc_y": 0.7, "idt": 0.3, "D_X": 0.2, "D_Y": 0.25, "s_per_it": 0.1, "lr": 2e-4}
            for i in (1000, 2000, 3000)]
    for row in rows:
        report.append_log(str(tmp_path / "loss_log.csv"), row)
    report.plot_losses(str(tmp_path / "loss_log.csv"), str(tmp_path / "curves.png"))
    img = Image.open(tmp_path / "curves.png")
    assert img.size == (900, 2 * 300)  # two panels: G and F's terms, then D_X and D_Y
    # The top panel's plot area runs from x = 70 to 900 - 25 = 875 and down to y = 300 - 52 = 248.
    # Iterations 0..3000 in steps of 1000: labels centred at 70 + 805 * k / 3 = 70, 338, 607, 875
    for x in (70, 338, 607, 875):
        assert dark(img, (x - 12, 252, x + 12, 268)) > 8, f"no tick label under x = {x}"
    # The highest loss is 0.9: 0.9 / 4 = 0.225 a step; 0.1 and 0.2 are too small, so 0.5:
    # ticks 0, 0.5, 1 at y = 248, 248 - 212 / 2 = 142 and 36, labelled left of x = 64
    for y in (248, 142, 36):
        assert dark(img, (30, y - 7, 64, y + 7)) > 8, f"no tick label left of y = {y}"
    assert dark(img, (0, 100, 30, 200)) == 0  # and nothing where no label belongs


def make_run(out, crop=32, epochs=(1, 2, 3)):
    """A run folder as train.py leaves it: a grid per epoch, the loss log, the metrics."""
    (out / "samples").mkdir(parents=True)
    for e in epochs:  # a grid is 3 images wide and 2 rows (one x, one y) high
        Image.new("RGB", (3 * crop, 2 * crop), "gray").save(out / "samples" / f"epoch_{e:03d}.png")
        report.append_metrics(out, e, {"L1 G(x) vs y": 0.3 / e, "L1 F(y) vs x": 0.2 / e})
    report.append_log(str(out / "loss_log.csv"), {
        "epoch": 1, "iter": 5, "total_iter": 5, "GAN(G)": 0.5, "GAN(F)": 0.4, "cyc_x": 0.9,
        "cyc_y": 0.7, "idt": "", "D_X": 0.2, "D_Y": 0.25, "s_per_it": 0.1, "lr": 2e-4})
    return out


def test_the_page_links_every_grid_latest_first_with_curves_and_settings(tmp_path):
    out = make_run(tmp_path / "run", epochs=(1, 2, 999, 1000))
    report.append_metrics(out, 1000, {"FID G": 80.1})
    report.write_index(out, "CycleGAN on toy", {"lr": 0.0002, "dataroot": "a<b>"})
    page = (out / "index.html").read_text()
    grids = re.findall(r"<img[^>]* src='samples/epoch_(\d+).png'", page)
    assert grids == ["1000", "999", "002", "001"]  # by number: as text, epoch_1000 < epoch_999
    assert "<h3>epoch 1000</h3>" in page
    assert "src='loss_curves.png'" in page and (out / "loss_curves.png").exists()
    assert "src='metrics.png'" in page and (out / "metrics.png").exists()
    # the metrics table: one row per epoch, latest first, with FID joining epoch 1000's row
    assert "<tr><td>1000</td><td>0.0003</td><td>0.0002</td><td>80.1</td></tr>" in page
    assert page.index("<td>1000</td>") < page.index("<td>999</td>") < page.index("<td>1</td>")
    assert "<tr><th>lr</th><td>0.0002</td></tr>" in page
    assert "<td>a&lt;b&gt;</td>" in page  # settings are escaped, not read as HTML
    # static: nothing fetched from anywhere, no scripts
    assert "http" not in page and "<script" not in page


def test_small_grids_are_scaled_up_blocky_and_large_ones_left_alone(tmp_path):
    small = make_run(tmp_path / "toy", crop=32, epochs=(1,))
    report.write_index(small, "toy")
    # a 32-pixel crop: ceil(128 / 32) = 4 times, so the 96 x 64 grid shows as 384 x 256
    assert ("<img class='pixelated' src='samples/epoch_001.png' width='384' height='256'"
            in (small / "index.html").read_text())
    # the toy's 4 samples a domain: 8 rows, 256 high; 4 times would be 1024 high, so 800 // 256 = 3
    Image.new("RGB", (96, 256)).save(small / "samples" / "epoch_002.png")
    report.write_index(small, "toy")
    page = (small / "index.html").read_text()
    assert "src='samples/epoch_002.png' width='288' height='768'" in page
    large = make_run(tmp_path / "h2z", crop=256, epochs=(1,))
    report.write_index(large, "h2z")
    # 256 pixels are already large: the 768 x 512 grid shows as it is, smooth if a window shrinks it
    assert "<img src='samples/epoch_001.png' width='768' height='512'" in (
        large / "index.html").read_text()


def test_the_metrics_curve_shows_fid_points_on_their_own_axis(tmp_path):
    out = make_run(tmp_path / "run", epochs=(1, 2, 3, 4))
    report.append_metrics(out, 2, {"FID G": 120.0})
    report.append_metrics(out, 4, {"FID G": 60.0})
    report.plot_metrics(out / "metrics.csv", out / "metrics.png")
    # L1 (0.3 at most) and FID (120) would flatten each other on one axis: one panel each
    assert Image.open(out / "metrics.png").size == (900, 2 * 300)


def test_the_page_of_a_run_with_nothing_yet_still_opens(tmp_path):
    report.write_index(tmp_path, "a new run")  # no samples/, no logs: a page with the title
    page = (tmp_path / "index.html").read_text()
    assert "<h1>a new run</h1>" in page and "<img" not in page


def test_the_l1_curve_draws_each_baseline_dashed_in_its_curves_colour(tmp_path):
    # G's error falls 0.3, 0.15, 0.1; its baselines: the mean image 0.35, the input 1.2
    for e in (1, 2, 3):
        report.append_metrics(tmp_path, e, {"L1 G(x) vs y": 0.3 / e, "L1 G(x) vs y (input)": 1.2,
                                            "L1 G(x) vs y (mean y)": 0.35})
    report.plot_metrics(tmp_path / "metrics.csv", tmp_path / "metrics.png")
    a = np.asarray(Image.open(tmp_path / "metrics.png").convert("RGB")).astype(int)
    red = (np.abs(a - [0xd6, 0x27, 0x28]).sum(-1) < 30)  # G's colour, COLOURS[0]
    # 1.2 is above 1.5 * 0.3 = 0.45: named at the top, off the scale, so the axis still ends at
    # ticks(0.35) = 0.4, and the mean image's line lies at 248 - 212 * 0.35 / 0.4 = 62.5 px
    row = red[62:64, 100:800].any(0)
    assert 0.3 < row.mean() < 0.7, "no dashed line at 0.35 (dashes 5 px on, 5 px off)"
    assert report.split_baselines(report.read_metrics(tmp_path / "metrics.csv"))[1] == {
        "L1 G(x) vs y": {"input": 1.2, "mean y": 0.35}}


def writer(tmp_path, epoch, iteration, args_out=None):
    """A report.RunWriter on a tiny toy, as train.py makes one: epoch epochs done, then
    iteration iterations of the next (7 epochs in all, 4 + 3)."""
    from types import SimpleNamespace

    from cyclegan import Generator
    from toy import make_toy
    root = make_toy(str(tmp_path / "toy"), n_train=2, n_test=2, size=8)
    args = SimpleNamespace(out=args_out, crop_size=8, n_samples=2, print_every=1,
                           save_epoch_freq=100, n_epochs=4, n_epochs_decay=3)
    out = tmp_path / "runs" / "toy"
    (out / "samples").mkdir(parents=True)
    at = {"epoch": epoch, "iter": iteration, "total_iters": 10 * epoch + iteration}
    G = Generator(ngf=2, n_blocks=1)
    return report.RunWriter(str(out), args, True, lambda: {}, at, G, G, root, "cpu"), out


def state(out):
    return re.search(r"<b>This run:</b> (.*?) \(at [\d: -]+\)</p>",
                     (out / "index.html").read_text()).group(1)


def test_the_page_says_whether_the_run_is_running_finished_or_stopped(tmp_path, capsys):
    write, out = writer(tmp_path, 3, 0)
    write.end_of_epoch(3, 7)
    assert state(out) == "running: epoch 3 of 7 done"
    write.finish(stopped=True)  # Ctrl-C between epochs 3 and 4
    assert state(out) == "stopped after epoch 3 of 7; --resume continues it"
    write.at.update(epoch=3, iter=5)  # resumed, then stopped inside epoch 4
    write.finish(stopped=True)
    assert state(out) == "stopped at epoch 4 of 7, iteration 5; --resume continues it"
    write.at.update(epoch=7, iter=0)
    write.finish(stopped=False)
    assert state(out) == "finished: 7 of 7 epochs"
    # evaluate.py rewrites the page (adding FID) without knowing the state: it stays
    report.write_index(str(out), "again", {"out": None})
    assert state(out) == "finished: 7 of 7 epochs"


def test_the_settings_name_the_folder_the_run_wrote_to(tmp_path, capsys):
    write, out = writer(tmp_path, 1, 0, args_out=None)  # train.py's default: runs/NAME
    write.end_of_epoch(1, 7)
    assert f"<tr><th>out</th><td>{out}</td></tr>" in (out / "index.html").read_text()


def test_the_page_names_the_baselines_and_labels_the_grid_columns(tmp_path):
    out = make_run(tmp_path / "run", epochs=(1, 2))
    report.append_metrics(out, 2, {"L1 G(x) vs y (input)": 1.5, "L1 G(x) vs y (mean y)": 0.25})
    report.write_index(out, "toy")
    page = (out / "index.html").read_text()
    assert "(L1 G(x) vs y: input 1.500, mean y 0.250)" in page
    assert "<th>L1 G(x) vs y (input)</th>" not in page  # named once, not a column per epoch
    heads = ("<div class='heads'><span>real_x<br>real_y</span>"
             "<span>fake_y = G(x)<br>fake_x = F(y)</span>"
             "<span>rec_x = F(G(x))<br>rec_y = G(F(y))</span></div>")
    # each grid: its column names above it, at the grid's shown width (3 * 32 * 4 = 384)
    assert page.count(f"<div class='grid' style='width:384px'>{heads}<a href=") == 2
