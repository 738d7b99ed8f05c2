"""Worked examples for translate.py: G(x) and F(y) (Sec. 3, Fig. 1) on images of any size."""
import os
import pathlib
import re
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest
import torch
from PIL import Image

import checkpoints
import data
import translate
from cyclegan import Generator
from data import to_image, to_tensor

ROOT = pathlib.Path(__file__).resolve().parent.parent


def tiny_checkpoint(path, seed=0):
    """A train.py-style checkpoint with two small, different generators; returns (G, F)."""
    torch.manual_seed(seed)
    G, F = Generator(ngf=4, n_blocks=1), Generator(ngf=4, n_blocks=1)
    torch.save({"G": G.state_dict(), "F": F.state_dict(), "args": {"ngf": 4, "n_blocks": 1}}, path)
    return G.eval(), F.eval()


def random_image(path, width, height, mode="RGB", seed=0):
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    a = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    Image.fromarray(a.squeeze(-1) if channels == 1 else a, mode).save(path)
    return path


def pixels(path):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).astype(int)


def run(tmp_path, *args):
    """translate.main with the tiny checkpoint, writing to tmp_path/out unless args give --out."""
    ckpt = tmp_path / "latest.pt"
    if not ckpt.exists():
        tiny_checkpoint(ckpt)
    argv = ["--checkpoint", str(ckpt), "--out", str(tmp_path / "out"), *map(str, args)]
    return translate.main(argv)


def test_padding_reflects_up_to_a_multiple_of_4_and_at_least_8():
    x = torch.tensor([[[[1.0, 2.0, 3.0, 4.0, 5.0]]]])  # one image, one channel, 1 row of 5
    padded = translate.pad_to_multiple_of_4(x)
    # width 5 -> 8 (the next multiple of 4, and at least 8): 3 columns mirrored about the last one,
    # 4, 3, 2 (zeros would give 0, 0, 0; repeating the edge in the mirror would give 5, 4, 3)
    # height 1 -> 8: a single row cannot be mirrored (pad 7 >= side 1), so it is repeated 7 times
    assert padded.shape == (1, 1, 8, 8)
    assert (padded == torch.tensor([1.0, 2, 3, 4, 5, 4, 3, 2])).all()
    # 37 wide, 50 high -> 40 (37 + 3) by 52 (50 + 2); 40 x 52 stays as it is
    assert translate.pad_to_multiple_of_4(torch.zeros(1, 3, 50, 37)).shape == (1, 3, 52, 40)
    assert translate.pad_to_multiple_of_4(torch.zeros(1, 3, 52, 40)).shape == (1, 3, 52, 40)


def test_output_is_the_generator_on_the_padded_image_cropped_back_to_the_input_size(tmp_path):
    G, _ = tiny_checkpoint(tmp_path / "latest.pt")
    for w, h in ((40, 52), (37, 50), (1, 1), (3, 5)):
        random_image(tmp_path / f"{w}x{h}.png", w, h)
    assert run(tmp_path, "--input", *sorted(tmp_path.glob("*.png"))) == 0
    for w, h in ((40, 52), (37, 50), (1, 1), (3, 5)):
        out = tmp_path / "out" / f"{w}x{h}.png"
        assert Image.open(out).size == (w, h)  # nothing stretched, nothing cut off
        real_x = to_tensor(Image.open(tmp_path / f"{w}x{h}.png")).unsqueeze(0)
        with torch.no_grad():
            fake_y = G(translate.pad_to_multiple_of_4(real_x))[..., :h, :w]  # G(x), Sec. 3
        assert (pixels(out) == np.asarray(to_image(fake_y[0]))).all()


def test_grayscale_and_transparent_inputs_are_translated_as_rgb(tmp_path):
    random_image(tmp_path / "gray.png", 9, 6, "L")
    Image.new("RGBA", (9, 6), (0, 0, 0, 0)).save(tmp_path / "clear.png")  # fully transparent
    Image.new("RGB", (9, 6), "white").save(tmp_path / "white.png")
    assert run(tmp_path, "--input", tmp_path / "gray.png", tmp_path / "clear.png",
               tmp_path / "white.png") == 0
    for name, mode in (("gray", "RGB"), ("clear", "RGBA"), ("white", "RGB")):
        with Image.open(tmp_path / "out" / f"{name}.png") as img:
            assert (img.mode, img.size) == (mode, (9, 6))
    # data.load_rgb puts transparent pixels on white: G sees the same image as white.png
    assert (pixels(tmp_path / "out" / "clear.png") == pixels(tmp_path / "out" / "white.png")).all()


def transparent_image(path, hidden):
    """A 12 x 8 RGBA image: random colours, the left half transparent over the colour `hidden`,
    the right half at alphas 0..255."""
    a = np.random.default_rng(0).integers(0, 256, (8, 12, 4), dtype=np.uint8)
    a[:, :6, :3], a[:, :6, 3] = hidden, 0
    Image.fromarray(a, "RGBA").save(path)
    return a[..., 3]


def test_a_transparent_input_is_translated_on_white_as_in_training_and_keeps_its_alpha(tmp_path):
    G, _ = tiny_checkpoint(tmp_path / "latest.pt")
    alpha = transparent_image(tmp_path / "black.png", (0, 0, 0))
    transparent_image(tmp_path / "red.png", (255, 0, 0))
    assert run(tmp_path, "--input", tmp_path / "black.png", tmp_path / "red.png") == 0
    assert run(tmp_path, "--input", tmp_path / "black.png", "--ext", "jpg", "--out",
               tmp_path / "jpg") == 0
    with Image.open(tmp_path / "out" / "black.png") as png, \
            Image.open(tmp_path / "jpg" / "black.jpg") as jpg:
        assert png.mode == "RGBA" and (np.asarray(png.getchannel("A")) == alpha).all()
        assert jpg.mode == "RGB"  # JPEG holds no alpha: the translation of the image on white
    # the colour under a transparent pixel is not seen: as data.load_rgb does for training
    assert (pixels(tmp_path / "out" / "black.png") == pixels(tmp_path / "out" / "red.png")).all()
    with Image.open(tmp_path / "black.png") as img:
        on_white = data.as_rgb(img)
        fake = translate.translate_image(G, img)  # from Python: the same
    assert fake.mode == "RGBA" and (np.asarray(fake.getchannel("A")) == alpha).all()
    expected = translate.translate_tensor(G, to_tensor(on_white).unsqueeze(0))[0]
    assert (np.asarray(fake.convert("RGB")) == np.asarray(to_image(expected))).all()
    assert (pixels(tmp_path / "out" / "black.png") == np.asarray(to_image(expected))).all()


def test_the_page_enlarges_small_images_with_sharp_pixels_and_shrinks_large_ones(tmp_path):
    random_image(tmp_path / "small.png", 9, 6)
    random_image(tmp_path / "large.png", 400, 8)
    assert run(tmp_path, "--input", tmp_path / "small.png", tmp_path / "large.png") == 0
    page = (tmp_path / "out" / "index.html").read_text()
    # 9 pixels wide: 320 // 9 = 35 times, 315 screen pixels, each a sharp square
    assert page.count('<img src="small.png" width="315" class="pixelated">') == 1
    assert page.count('width="315" class="pixelated">') == 2  # the input and its output
    assert page.count('width="320">') == 2  # 400 wide: shrunk, smoothly
    assert "img.pixelated { image-rendering: pixelated }" in page


def test_counts_in_messages_agree_with_their_nouns(tmp_path, capsys):
    random_image(tmp_path / "one.png", 8, 8)
    assert run(tmp_path, "--input", tmp_path / "one.png") == 0
    out = capsys.readouterr().out
    assert "translating 1 image with" in out and "translated 1 image into" in out
    random_image(tmp_path / "two.png", 8, 8)
    assert run(tmp_path, "--input", tmp_path / "one.png", tmp_path / "two.png",
               "--out", tmp_path / "both") == 0
    out = capsys.readouterr().out
    assert "translating 2 images with" in out and "translated 2 images into" in out


def test_unreadable_file_is_reported_and_skipped_and_the_rest_translated(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    random_image(photos / "a.png", 8, 8)
    random_image(photos / "c.jpg", 8, 8)
    (photos / "b.png").write_bytes(b"not a png at all")
    assert run(tmp_path, "--input", photos) == 1  # 1: something was skipped
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and "b.png" in warnings[0]
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "c.png", "index.html"]


def test_size_makes_the_shorter_side_that_long_keeping_the_aspect_ratio(tmp_path):
    random_image(tmp_path / "in.png", 37, 50)
    assert run(tmp_path, "--input", tmp_path / "in.png", "--size", 16) == 0
    # 37 x 50 scaled by 16 / 37: 37 -> 16, 50 -> 50 * 16 / 37 = 21.6 -> 22
    assert Image.open(tmp_path / "out" / "in.png").size == (16, 22)


def test_more_pixels_than_the_budget_are_refused_unless_size_shrinks_them(tmp_path, capsys):
    random_image(tmp_path / "in.png", 37, 50)
    # 37 * 50 = 1850 pixels > 0.001 megapixels = 1000: refused before it reaches G
    assert run(tmp_path, "--input", tmp_path / "in.png", "--max_megapixels", 0.001) == 1
    assert "--size" in capsys.readouterr().err
    # 16 * 22 = 352 pixels <= 1000: translated
    assert run(tmp_path, "--input", tmp_path / "in.png", "--max_megapixels", 0.001,
               "--size", 16, "--out", tmp_path / "small") == 0


def test_out_of_memory_is_one_line_suggesting_size(tmp_path, capsys, monkeypatch):
    random_image(tmp_path / "in.png", 8, 8)

    def no_memory(net, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    monkeypatch.setattr(translate, "translate_tensor", no_memory)
    assert run(tmp_path, "--input", tmp_path / "in.png") == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "in.png" in err and "--size" in err


def test_index_html_shows_every_input_beside_its_output(tmp_path):
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for name in ("a&b.png", "sub/c d.png", "sub/e.jpg"):
        random_image(photos / name, 8, 12)
    assert run(tmp_path, "--input", photos) == 0
    page = (tmp_path / "out" / "index.html").read_text()
    assert "a&amp;b.png" in page and "a&b" not in page  # names are html-escaped
    links = [urllib.parse.unquote(src) for src in re.findall(r'src="([^"]+)"', page)]
    # three rows, each: the input (a relative link back into photos/), then its output
    assert links == ["../photos/a&b.png", "a&b.png", "../photos/sub/c d.png", "sub/c d.png",
                     "../photos/sub/e.jpg", "sub/e.png"]
    assert all((tmp_path / "out" / link).is_file() for link in links)


def test_x2y_applies_G_and_y2x_applies_F(tmp_path):
    G, F = tiny_checkpoint(tmp_path / "latest.pt")
    with torch.no_grad():  # the last conv, before the tanh (c7s1-3)
        G.model[-2].bias.fill_(-100.0)  # tanh(-100 + small) = -1 -> pixel (-1 + 1) * 127.5 = 0
        F.model[-2].bias.fill_(+100.0)  # tanh(+100 + small) = +1 -> pixel (1 + 1) * 127.5 = 255
    torch.save({"G": G.state_dict(), "F": F.state_dict(), "args": {}}, tmp_path / "latest.pt")
    random_image(tmp_path / "in.png", 8, 8)
    run(tmp_path, "--input", tmp_path / "in.png", "--direction", "x2y", "--out", tmp_path / "y")
    run(tmp_path, "--input", tmp_path / "in.png", "--direction", "y2x", "--out", tmp_path / "x")
    assert (pixels(tmp_path / "y" / "in.png") == 0).all()  # fake_y = G(x): black
    assert (pixels(tmp_path / "x" / "in.png") == 255).all()  # fake_x = F(y): white


def test_released_generator_file_translates_like_the_same_weights_in_a_checkpoint(tmp_path,
                                                                                  capsys):
    G, _ = tiny_checkpoint(tmp_path / "latest.pt")
    official = dict(G.state_dict())  # plain model.N keys, as in the authors' horse2zebra.pth
    for name, m in G.named_modules():  # older files also hold unused InstanceNorm statistics
        if isinstance(m, torch.nn.InstanceNorm2d):
            official[f"{name}.running_mean"] = torch.zeros(m.num_features)
            official[f"{name}.running_var"] = torch.ones(m.num_features)
    torch.save(official, tmp_path / "x2y.pth")
    random_image(tmp_path / "in.png", 37, 50)
    run(tmp_path, "--input", tmp_path / "in.png", "--out", tmp_path / "ours")
    argv = ["--checkpoint", str(tmp_path / "x2y.pth"), "--direction", "y2x",
            "--input", str(tmp_path / "in.png"), "--out", str(tmp_path / "theirs")]
    assert translate.main(argv) == 0
    assert "--direction is ignored" in capsys.readouterr().out  # one generator: it is G here
    assert (pixels(tmp_path / "ours" / "in.png") == pixels(tmp_path / "theirs" / "in.png")).all()


def test_same_stem_from_two_places_gives_two_outputs(tmp_path):
    for folder, seed in (("x", 1), ("y", 2)):
        (tmp_path / "photos" / folder).mkdir(parents=True)
        random_image(tmp_path / "photos" / folder / "cat.png", 8, 8, seed=seed)
    x_cat, y_cat = tmp_path / "photos" / "x" / "cat.png", tmp_path / "photos" / "y" / "cat.png"
    # files named one by one: the second cat gets a suffix
    assert run(tmp_path, "--input", x_cat, y_cat, "--out", tmp_path / "files") == 0
    assert sorted(os.listdir(tmp_path / "files")) == ["cat.png", "cat_2.png", "index.html"]
    # a folder keeps its subfolders
    assert run(tmp_path, "--input", tmp_path / "photos", "--out", tmp_path / "tree") == 0
    assert (pixels(tmp_path / "tree" / "x" / "cat.png")
            == pixels(tmp_path / "files" / "cat.png")).all()
    assert (pixels(tmp_path / "tree" / "y" / "cat.png")
            == pixels(tmp_path / "files" / "cat_2.png")).all()


def test_an_input_is_never_overwritten(tmp_path):
    random_image(tmp_path / "cat.png", 8, 8)
    before = (tmp_path / "cat.png").read_bytes()
    # the output would be tmp_path/cat.png, the input itself: it is written as cat_2.png
    assert run(tmp_path, "--input", tmp_path / "cat.png", "--out", tmp_path) == 0
    assert (tmp_path / "cat.png").read_bytes() == before
    assert Image.open(tmp_path / "cat_2.png").size == (8, 8)


def test_glob_patterns_are_expanded_and_keep_only_images(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    random_image(photos / "a.png", 8, 8)
    random_image(photos / "b.jpg", 8, 8)
    (photos / "notes.txt").write_text("not an image")
    assert run(tmp_path, "--input", str(photos / "*.png"), "--out", tmp_path / "png") == 0
    assert sorted(os.listdir(tmp_path / "png")) == ["a.png", "index.html"]
    assert run(tmp_path, "--input", str(photos / "*"), "--out", tmp_path / "all") == 0
    assert sorted(os.listdir(tmp_path / "all")) == ["a.png", "b.png", "index.html"]


def test_results_do_not_depend_on_the_batch_size(tmp_path):
    for i in range(3):
        random_image(tmp_path / f"{i}.png", 12, 8, seed=i)
    inputs = [tmp_path / f"{i}.png" for i in range(3)]
    run(tmp_path, "--input", *inputs, "--batch_size", 1, "--out", tmp_path / "one")
    run(tmp_path, "--input", *inputs, "--batch_size", 3, "--out", tmp_path / "three")
    for i in range(3):  # instance norm is per image: batching changes nothing
        assert (pixels(tmp_path / "one" / f"{i}.png")
                == pixels(tmp_path / "three" / f"{i}.png")).all()


def test_no_input_images_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="^error: no input images"):
        run(tmp_path, "--input", tmp_path / "empty")


def test_missing_checkpoint_is_a_one_line_error(tmp_path):
    argv = ["--checkpoint", str(tmp_path / "nope.pt"), "--input", str(tmp_path), "--out", "o"]
    with pytest.raises(SystemExit) as e:
        translate.main(argv)
    assert str(e.value) == f"error: --checkpoint {tmp_path / 'nope.pt'}: no such file"


def test_unknown_checkpoint_layout_names_the_keys_it_expected(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "odd.pt")
    argv = ["--checkpoint", str(tmp_path / "odd.pt"), "--input", str(tmp_path), "--out", "o"]
    with pytest.raises(SystemExit, match="expected keys 'G' and 'F' .* or 'model.1.weight'"):
        translate.main(argv)


class LeavesAMark:
    """Unpickling this calls pathlib.Path.touch: a stand-in for any code a file could run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    mark = tmp_path / "code_ran"
    torch.save({"G": LeavesAMark(mark), "F": {}}, tmp_path / "evil.pt")
    argv = ["--checkpoint", str(tmp_path / "evil.pt"), "--input", str(tmp_path), "--out", "o"]
    with pytest.raises(SystemExit, match="refused") as e:
        translate.main(argv)
    assert "\n" not in str(e.value) and not mark.exists()
    torch.load(tmp_path / "evil.pt", weights_only=False)  # what a plain torch.load would have done
    assert mark.exists()


def test_translate_py_runs_as_a_script(tmp_path):
    tiny_checkpoint(tmp_path / "latest.pt")
    random_image(tmp_path / "in.png", 10, 7)
    result = subprocess.run([sys.executable, str(ROOT / "translate.py"), "--checkpoint",
                             str(tmp_path / "latest.pt"), "--input", str(tmp_path / "*.png"),
                             "--out", str(tmp_path / "out"), "--ext", "jpg"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "images/s" in result.stdout
    assert Image.open(tmp_path / "out" / "in.jpg").size == (10, 7)


def test_a_second_run_does_not_translate_the_first_runs_outputs(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    random_image(photos / "cat.png", 8, 8)
    for again in ([], ["--overwrite"]):  # --out inside the input folder: searched without it
        assert run(tmp_path, "--input", photos, "--out", photos / "zebra", *again) == 0
    assert sorted(os.listdir(photos / "zebra")) == ["cat.png", "index.html"]


# The Python API: the same functions the command line is built on


def test_load_generator_and_translate_image_give_what_translate_py_writes(tmp_path):
    G, F = tiny_checkpoint(tmp_path / "latest.pt")
    random_image(tmp_path / "in.png", 37, 50, "L")  # grayscale, sides not multiples of 4
    run(tmp_path, "--input", tmp_path / "in.png", "--out", tmp_path / "y")
    run(tmp_path, "--input", tmp_path / "in.png", "--out", tmp_path / "x", "--direction", "y2x")
    for direction, folder in (("x2y", "y"), ("y2x", "x")):  # the two documented lines:
        net = translate.load_generator(tmp_path / "latest.pt", direction)
        out = translate.translate_image(net, Image.open(tmp_path / "in.png"))
        assert (out.mode, out.size) == ("RGB", (37, 50))  # any mode in, RGB of the same size out
        assert (np.asarray(out) == pixels(tmp_path / folder / "in.png")).all()
    # and the two directions really are two different networks, G and F
    assert not (pixels(tmp_path / "x" / "in.png") == pixels(tmp_path / "y" / "in.png")).all()


def test_translate_tensor_keeps_the_shape_and_ignores_train_or_eval_mode(tmp_path):
    G, _ = tiny_checkpoint(tmp_path / "latest.pt")
    real_x = torch.rand(2, 3, 50, 37) * 2 - 1  # two images in [-1, 1], 37 wide, 50 high
    fake_y = translate.translate_tensor(G.eval(), real_x)
    assert fake_y.shape == (2, 3, 50, 37)  # padded to 52 x 40 inside, cropped back
    # instance norm always uses each image's own statistics and there is no dropout, so
    # train mode gives the same numbers (batch norm with running statistics would not)
    assert torch.equal(translate.translate_tensor(G.train(), real_x), fake_y)
    # a network in half precision (bfloat16) takes the float32 batch and gives float32 back
    half = translate.translate_tensor(Generator(ngf=4, n_blocks=1).bfloat16(), real_x)
    assert half.dtype == torch.float32 and half.shape == (2, 3, 50, 37)
    with torch.no_grad():  # and each image alone gives what it gives in the batch
        alone = G.eval()(translate.pad_to_multiple_of_4(real_x[1:]))[..., :50, :37]
    assert torch.allclose(alone, fake_y[1:], atol=1e-6)


def test_translate_py_the_api_and_the_training_sample_grid_agree(tmp_path):
    """One image, one set of weights, three paths: report.save_samples (what train.py shows each
    epoch), translate_image, and translate.py. Each must give the same pixels."""
    import types

    import report
    import train
    from data import UnpairedDataset
    root = tmp_path / "data"
    for split, seed in (("testA", 1), ("testB", 2)):
        (root / split).mkdir(parents=True)
        random_image(root / split / "0.png", 30, 30, seed=seed)  # shown at --crop_size 24
    # networks exactly as train.py makes them (channels-last memory) and its sample images
    args = types.SimpleNamespace(ngf=4, n_blocks=1, ndf=4, lr=2e-4, beta1=0.5)
    G, F = train.make_networks(args, torch.device("cpu"))[:2]
    samples = UnpairedDataset(str(root), "test", 24, 24)
    sample_x, sample_y = samples.load("X", 0)[None], samples.load("Y", 0)[None]
    report.save_samples(G.train(), F.train(), sample_x, sample_y, tmp_path / "grid.png")
    grid = pixels(tmp_path / "grid.png")  # rows: real_x | fake_y | rec_x, real_y | fake_x | rec_y
    fake_y_in_grid, fake_x_in_grid = grid[:24, 24:48], grid[24:, 24:48]
    torch.save({"G": G.state_dict(), "F": F.state_dict()}, tmp_path / "latest.pt")
    for direction, split, in_grid in (("x2y", "testA", fake_y_in_grid),
                                      ("y2x", "testB", fake_x_in_grid)):
        net = translate.load_generator(tmp_path / "latest.pt", direction)
        # the same bicubic resize: 30 x 30 to 24 x 24 (test_transform; --size 24, shorter side)
        api = translate.translate_image(net, Image.open(root / split / "0.png"), size=24)
        assert (np.asarray(api) == in_grid).all()
        run(tmp_path, "--input", root / split, "--out", tmp_path / direction,
            "--direction", direction, "--size", 24)
        assert (pixels(tmp_path / direction / "0.png") == in_grid).all()


def test_library_functions_raise_ordinary_exceptions_never_systemexit(tmp_path):
    tiny_checkpoint(tmp_path / "latest.pt")
    with pytest.raises(FileNotFoundError, match=r"nope\.pt: no such file"):
        translate.load_generator(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match=r"odd\.pt: unknown layout: expected keys 'G' and 'F'"):
        translate.load_generator(tmp_path / "odd.pt")
    (tmp_path / "half.pt").write_bytes((tmp_path / "latest.pt").read_bytes()[:100])  # cut short
    with pytest.raises(ValueError, match=r"cannot read .*half\.pt: not a complete file written by "
                                   r"torch.save"):
        translate.load_generator(tmp_path / "half.pt")
    G = translate.load_generator(tmp_path / "latest.pt")
    with pytest.raises(ValueError, match=r"expected a \(N, 3, H, W\) float batch.*unsqueeze"):
        translate.translate_tensor(G, torch.zeros(3, 8, 8))  # one image without its batch axis
    random_image(tmp_path / "big.png", 40, 30)
    # 40 * 30 = 1200 pixels = 0.0012 megapixels > 0.001
    with pytest.raises(ValueError, match="40x30 is 0.0012 megapixels, more than --max_megapixels "
                                         "0.001: add --size"):
        translate.read_image(tmp_path / "big.png", max_megapixels=0.001)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match="not a readable image"):
        translate.read_image(tmp_path / "bad.png")


def test_the_example_in_docs_runs_and_matches_translate_py(tmp_path):
    tiny_checkpoint(tmp_path / "latest.pt")
    random_image(tmp_path / "horse.png", 21, 13, "RGBA")
    for direction in ("x2y", "y2x"):
        result = subprocess.run([sys.executable, str(ROOT / "docs" / "example.py"),
                                 str(tmp_path / "latest.pt"), str(tmp_path / "horse.png"),
                                 str(tmp_path / f"{direction}.png"), direction],
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        run(tmp_path, "--input", tmp_path / "horse.png", "--direction", direction,
            "--out", tmp_path / direction)
        with Image.open(tmp_path / f"{direction}.png") as mine, \
                Image.open(tmp_path / direction / "horse.png") as theirs:
            assert mine.mode == theirs.mode == "RGBA"  # the horse's transparency, kept
            assert (np.asarray(mine) == np.asarray(theirs)).all()


def test_the_example_says_how_to_call_it_and_names_a_missing_checkpoint_in_one_line(tmp_path):
    def example(*args):
        return subprocess.run([sys.executable, str(ROOT / "docs" / "example.py"), *map(str, args)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    for args in ((), ("a.pt", "in.png"), ("a.pt", "in.png", "out.png", "sideways")):
        r = example(*args)
        assert (r.returncode, r.stdout, r.stderr) == (
            2, "", "usage: python docs/example.py CHECKPOINT INPUT OUTPUT [x2y|y2x]\n")
    r = example("runs/toy/latest.pt", "in.png", "out.png")  # before python train.py
    assert (r.returncode, r.stderr) == (1, "error: runs/toy/latest.pt: no such file\n")


def test_the_example_translates_with_the_quick_starts_toy_checkpoint(tmp_path):
    # runs/toy/latest.pt as train.py writes it on the toy: its small networks, with the digest
    torch.manual_seed(0)
    G, F = Generator(ngf=8, n_blocks=3), Generator(ngf=8, n_blocks=3)
    (tmp_path / "runs" / "toy").mkdir(parents=True)
    checkpoints.save_checkpoint(str(tmp_path / "runs" / "toy" / "latest.pt"), {
        "G": G.state_dict(), "F": F.state_dict(), "epoch": 7,
        "args": {"ngf": 8, "n_blocks": 3, "crop_size": 32}})
    random_image(tmp_path / "x.png", 32, 32)
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "example.py"), "runs/toy/latest.pt",
                        "x.png", "y.png"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert (r.returncode, r.stdout) == (0, "x.png -> y.png\n"), r.stderr
    x = to_tensor(Image.open(tmp_path / "x.png")).unsqueeze(0)
    expected = translate.translate_tensor(G.eval(), x)[0]
    assert (pixels(tmp_path / "y.png") == np.asarray(to_image(expected))).all()


# Never lose a user's file, and one-line errors


def test_files_in_out_that_this_run_did_not_write_are_kept_without_overwrite(tmp_path):
    random_image(tmp_path / "cat.png", 8, 8, seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat.png").write_bytes(b"the user's own cat")  # where the output would go
    (out / "index.html").write_text("the user's own page")
    with pytest.raises(SystemExit) as e:
        run(tmp_path, "--input", tmp_path / "cat.png")
    assert str(e.value) == (f"error: --out {out} already holds 2 of this run's output files "
                            "(cat.png, index.html): add --overwrite to replace them, "
                            "or choose another --out")
    assert (out / "cat.png").read_bytes() == b"the user's own cat"  # nothing touched
    assert sorted(os.listdir(out)) == ["cat.png", "index.html"]  # nothing added
    assert run(tmp_path, "--input", tmp_path / "cat.png", "--overwrite") == 0
    assert Image.open(out / "cat.png").size == (8, 8)
    assert "<table>" in (out / "index.html").read_text()


def test_a_glob_or_folder_never_reads_the_output_folder(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    random_image(photos / "cat.png", 8, 8)
    for again in ([], ["--overwrite"]):  # the second run sees the first one's zebra/cat.png
        assert run(tmp_path, "--input", str(photos / "**" / "*.png"), "--out", photos / "zebra",
                   *again) == 0
    assert sorted(os.listdir(photos / "zebra")) == ["cat.png", "index.html"]  # no cat_2.png
    with pytest.raises(SystemExit, match="outside --out: a run never reads its own output"):
        run(tmp_path, "--input", photos / "zebra", "--out", photos / "zebra", "--overwrite")


def test_out_that_is_a_file_is_a_one_line_error_and_nothing_is_written(tmp_path):
    random_image(tmp_path / "cat.png", 8, 8)
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(SystemExit) as e:
        run(tmp_path, "--input", tmp_path / "cat.png", "--out", tmp_path / "taken")
    assert str(e.value) == f"error: --out {tmp_path / 'taken'} is a file: give a folder"
    assert (tmp_path / "taken").read_text() == "a file, not a folder"


def test_read_only_out_is_a_one_line_error_before_anything_is_translated(tmp_path, monkeypatch):
    random_image(tmp_path / "cat.png", 8, 8)
    (tmp_path / "out").mkdir()
    (tmp_path / "out").chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere; fail the write as a read-only folder would
        import tempfile

        def refused(*args, **kwargs):
            raise PermissionError(13, "Permission denied")
        monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    try:
        with pytest.raises(SystemExit) as e:
            run(tmp_path, "--input", tmp_path / "cat.png")
    finally:
        (tmp_path / "out").chmod(0o755)
    assert str(e.value) == (f"error: --out {tmp_path / 'out'}: cannot write there "
                            "(Permission denied)")
    assert os.listdir(tmp_path / "out") == []


def test_a_failed_write_is_one_line_and_leaves_no_half_file(tmp_path, monkeypatch):
    for name in ("a", "b"):
        random_image(tmp_path / f"{name}.png", 8, 8)
    real_save = Image.Image.save

    def disk_fills_up(img, path, *args, **kwargs):
        if "b.png" in str(path):  # a full disk while writing the second output
            open(path, "wb").write(b"\x89PNG half")
            raise OSError(28, "No space left on device")
        return real_save(img, path, *args, **kwargs)
    monkeypatch.setattr(Image.Image, "save", disk_fills_up)
    with pytest.raises(SystemExit) as e:
        run(tmp_path, "--input", tmp_path / "a.png", tmp_path / "b.png", "--batch_size", 1)
    assert str(e.value) == (f"error: cannot write {tmp_path / 'out' / 'b.png'} (No space left on "
                            "device); 1 image written before it, complete")
    assert os.listdir(tmp_path / "out") == ["a.png"]  # no b.png, no temporary file


def test_file_names_that_are_not_utf8_are_translated_and_escaped_in_the_page(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    raw = os.path.join(os.fsencode(photos), b"caf\xe9.png")  # Latin-1 e-acute: not UTF-8
    random_image(raw.decode("utf-8", "surrogateescape"), 8, 8)
    with open(os.path.join(os.fsencode(photos), b"bad\xff.png"), "wb") as f:
        f.write(b"not a png")  # unreadable, so it is listed as skipped
    assert run(tmp_path, "--input", photos) == 1  # 1: bad\xff.png was skipped
    assert sorted(os.listdir(os.fsencode(tmp_path / "out"))) == [b"caf\xe9.png", b"index.html"]
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    # linked by its bytes (%E9), shown with an escape a reader can see
    assert 'src="caf%E9.png"' in page and "caf\\xe9.png" in page and "skipped" in page
    assert "bad\\xff.png" in page


def test_a_huge_size_is_refused_before_any_resize(tmp_path, monkeypatch, capsys):
    random_image(tmp_path / "strip.png", 1, 400)  # 1 wide, 400 high
    # --size 5000: every image would be at least 5000 x 5000 = 25 megapixels > 16
    with pytest.raises(SystemExit):
        run(tmp_path, "--input", tmp_path / "strip.png", "--size", 5000)
    # --size 100: 1 x 400 -> 100 x 40000 = 4 megapixels > 1; checked before Pillow resizes
    sizes = []
    real_resize = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize",
                        lambda img, size, *a, **k: sizes.append(size) or real_resize(img, size))
    assert run(tmp_path, "--input", tmp_path / "strip.png", "--size", 100,
               "--max_megapixels", 1) == 1
    assert sizes == []
    assert "1x400 resized to 100x40000 is 4 megapixels, more than --max_megapixels 1: use a " \
           "smaller --size" in capsys.readouterr().err


def test_pillows_decompression_limit_gives_way_to_max_megapixels(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses over 2 x 100 pixels
    random_image(tmp_path / "in.png", 20, 20)  # 400 pixels: a "bomb" to Pillow
    # 400 pixels <= --max_megapixels 0.001 = 1000 pixels: translated, Pillow's limit is ours
    assert run(tmp_path, "--input", tmp_path / "in.png", "--max_megapixels", 0.001) == 0
    assert Image.MAX_IMAGE_PIXELS == 100  # and Pillow's own limit is back as it was
    # 400 > 0.0002 megapixels = 200 pixels: refused with our flags, not Pillow's "DOS attack"
    assert run(tmp_path, "--input", tmp_path / "in.png", "--max_megapixels", 0.0002,
               "--out", tmp_path / "small") == 1
    err = capsys.readouterr().err
    assert "more than --max_megapixels 0.0002: add --size" in err and "DOS" not in err
    # with --size 8 the result fits (64 pixels), but the file is over Pillow's 100: say how
    assert run(tmp_path, "--input", tmp_path / "in.png", "--max_megapixels", 0.0002,
               "--size", 8, "--out", tmp_path / "sized") == 1
    assert "add --max_megapixels 1 if you trust the file" in capsys.readouterr().err


def test_a_refused_checkpoint_says_why_in_plain_words(tmp_path):
    torch.save(Generator(ngf=4, n_blocks=1), tmp_path / "whole.pt")  # a whole pickled network
    with pytest.raises(ValueError) as e:
        translate.load_generator(tmp_path / "whole.pt")
    message = str(e.value)
    assert "(cyclegan.Generator)" in message and "net.state_dict()" in message
    assert "\n" not in message and "\x1b" not in message and "safe_globals" not in message


def test_a_plain_tensor_says_what_it_is_and_what_to_give(tmp_path):
    torch.save(torch.zeros(3, 7), tmp_path / "tensor.pt")
    argv = ["--checkpoint", str(tmp_path / "tensor.pt"), "--input", str(tmp_path), "--out", "o"]
    with pytest.raises(SystemExit) as e:
        translate.main(argv)
    assert str(e.value) == (f"error: --checkpoint {tmp_path / 'tensor.pt'} holds one tensor of "
                            "shape (3, 7), not a network: give runs/NAME/latest.pt from train.py "
                            "or a released generator .pth")


def test_size_applies_to_a_phone_photo_as_it_is_shown_after_its_stored_rotation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: shown turned 90 degrees, so 40 x 20 stored is 20 x 40 shown
    Image.new("RGB", (40, 20), "red").save(tmp_path / "phone.jpg", exif=exif)
    assert run(tmp_path, "--input", tmp_path / "phone.jpg", "--size", 10) == 0
    # shown 20 x 40, shorter side 20 -> 10: 10 x 20 (the stored 40 x 20 would give 20 x 10)
    assert Image.open(tmp_path / "out" / "phone.png").size == (10, 20)


def test_a_checkpoint_corrupted_inside_a_tensor_is_refused(tmp_path):
    from checkpoints import save_checkpoint
    G, F = tiny_checkpoint(tmp_path / "plain.pt")
    save_checkpoint(str(tmp_path / "latest.pt"), {"G": G.state_dict(), "F": F.state_dict()})
    assert translate.load_generator(tmp_path / "latest.pt") is not None  # whole: it loads
    ckpt = torch.load(tmp_path / "latest.pt", weights_only=True)
    ckpt["G"]["model.1.bias"][0] += 1.0  # one weight changed, the digest kept
    torch.save(ckpt, tmp_path / "latest.pt")
    with pytest.raises(ValueError, match=r"latest\.pt is corrupt: .*epoch_NNN\.pt"):
        translate.load_generator(tmp_path / "latest.pt")


def test_a_gpu_flag_without_a_gpu_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as e:
        run(tmp_path, "--input", tmp_path, "--cuda")
    assert str(e.value).startswith("error: --cuda: no GPU is visible to PyTorch")
