"""Worked examples for data.py: the history pool (Sec. 4), the transforms, the unpaired dataset,
and where --dataroot points."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import data
import toy
from data import ImagePool, UnpairedDataset, load_rgb, to_tensor, train_transform


def image(value):
    return torch.full((1, 3, 2, 2), float(value))  # a one-image batch, every pixel = value


def values(batch):
    return [int(b[0, 0, 0]) for b in batch]


@pytest.mark.paper
def test_pool_stores_and_returns_the_first_50_fakes():
    pool = ImagePool(50)
    for v in range(50):
        assert values(pool.query(image(v))) == [v]  # still filling: each fake comes straight back
    assert len(pool.images) == 50


@pytest.mark.paper
def test_pool_when_full_swaps_half_the_time_seeded():
    pool = ImagePool(pool_size=2, seed=0)
    assert values(pool.query(torch.cat([image(1), image(2)]))) == [1, 2]  # filling: [1, 2]
    # random.Random(0) draws 0.844, 0.758, 0.421, 0.966, 0.486 ...: below 0.5 means "swap"
    assert values(pool.query(image(3))) == [3]  # 0.844: the new fake itself
    assert values(pool.query(image(4))) == [4]  # 0.758: new
    assert values(pool.query(image(5))) == [2]  # 0.421: swap slot randrange(2) = 1, holding 2
    assert values(torch.cat(pool.images)) == [1, 5]  # ... and 5 takes its place
    assert values(pool.query(image(6))) == [6]  # 0.966: new
    assert values(pool.query(image(7))) == [5]  # 0.486: swap slot 1 again
    assert values(torch.cat(pool.images)) == [1, 7]


@pytest.mark.paper
def test_pool_returns_an_old_fake_about_half_the_time():
    pool = ImagePool(pool_size=50, seed=3)
    pool.query(torch.cat([image(v) for v in range(50)]))
    returned = values(pool.query(torch.cat([image(v) for v in range(50, 2050)])))
    old = sum(v < k + 50 for k, v in enumerate(returned))  # anything but the fake just made
    assert 900 < old < 1100  # 2000 draws at p = 0.5: mean 1000, std 22


@pytest.mark.paper
def test_pool_stores_detached_fakes():
    fake = torch.zeros(2, 3, 2, 2, requires_grad=True) * 2  # part of a graph back into G
    pool = ImagePool(50)
    assert not pool.query(fake).requires_grad, "query() must return detached fakes"
    assert not any(i.requires_grad for i in pool.images), "the pool must store detached fakes"
    assert not ImagePool(0).query(fake).requires_grad  # no pool: detached all the same


@pytest.mark.paper
def test_pool_state_round_trip_continues_identically():
    a = ImagePool(3, seed=1)
    a.query(torch.cat([image(v) for v in range(5)]))
    b = ImagePool(3, seed=99)
    b.load_state_dict(a.state_dict())
    batch = torch.cat([image(v) for v in range(10, 20)])
    assert values(a.query(batch)) == values(b.query(batch))


def test_to_tensor_maps_0_255_to_minus_1_1():
    img = Image.fromarray(np.array([[[0, 51, 255]]], dtype=np.uint8))  # one RGB pixel
    # 0 / 127.5 - 1 = -1;  51 / 127.5 - 1 = -0.6;  255 / 127.5 - 1 = 1
    assert to_tensor(img).flatten().tolist() == pytest.approx([-1.0, -0.6, 1.0])
    assert to_tensor(img).shape == (3, 1, 1)


def test_train_transform_is_a_crop_of_the_resized_image_maybe_flipped():
    # a 286x286 image whose pixel (row, col) encodes row and col: the resize to 286 keeps it as is
    rows, cols = np.meshgrid(np.arange(286), np.arange(286), indexing="ij")
    a = np.stack([rows % 256, cols % 256, (rows // 256) * 100 + (cols // 256)], -1).astype(np.uint8)
    img = Image.fromarray(a)
    flips = 0
    for seed in range(20):
        out = ((train_transform(img, 286, 256, np.random.default_rng(seed)) + 1) * 127.5).round()
        out = out.numpy().astype(int).transpose(1, 2, 0)
        col = out[0, :, 1] + 256 * (out[0, :, 2] % 100)  # decode the column of each pixel
        if col[0] > col[-1]:  # columns run backwards: flipped
            flips += 1
            out = out[:, ::-1]
        top = out[0, 0, 0] + 256 * (out[0, 0, 2] // 100)
        left = out[0, 0, 1] + 256 * (out[0, 0, 2] % 100)
        assert 0 <= top <= 30 and 0 <= left <= 30  # 286 - 256 = 30 possible offsets each way
        assert (out == a[top:top + 256, left:left + 256]).all()
    assert 4 <= flips <= 16  # about half of the 20 seeds flip


def test_small_images_are_upscaled_not_rejected():
    img = Image.new("RGB", (10, 7), "red")
    out = train_transform(img, 286, 256, np.random.default_rng(0))
    assert out.shape == (3, 256, 256) and out[0].min() == 1.0  # red stays red: R = 255 -> 1


def save(path, img, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kwargs)
    return path


def test_load_rgb_converts_every_mode_to_rgb(tmp_path):
    gray = save(tmp_path / "g.png", Image.new("L", (4, 4), 128))
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # a transparent pixel
    rgba = save(tmp_path / "a.png", rgba)
    palette = save(tmp_path / "p.gif", Image.new("P", (4, 4), 3))
    cmyk = save(tmp_path / "c.jpg", Image.new("CMYK", (4, 4), (0, 255, 255, 0)))
    deep = save(tmp_path / "d.png", Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)))
    dark = save(tmp_path / "k.png", Image.fromarray(np.full((4, 4), 2570, dtype=np.uint16)))
    for path in (gray, rgba, palette, cmyk, deep, dark):
        assert load_rgb(path).mode == "RGB"
    assert load_rgb(gray).getpixel((1, 1)) == (128, 128, 128)
    assert load_rgb(rgba).getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    assert load_rgb(rgba).getpixel((1, 1)) == (255, 0, 0)
    assert load_rgb(deep).getpixel((0, 0)) == (255, 255, 255)  # 16-bit 65535 / 257 = 255
    assert load_rgb(dark).getpixel((0, 0)) == (10, 10, 10)  # 2570 / 257 = 10, not clipped to 255
    assert load_rgb(cmyk).getpixel((0, 0))[0] > 200  # cyan 0, magenta, yellow full: red


def make_dataset(root, n_a=3, n_b=5):
    for i in range(n_a):
        save(root / "trainA" / f"a{i}.jpg", Image.new("RGB", (12, 9), (10 * i, 0, 0)))
    for i in range(n_b):
        save(root / "trainB" / f"b{i}.png", Image.new("RGB", (9, 12), (0, 10 * i, 0)))
    return root


@pytest.mark.paper
def test_dataset_pairs_each_x_with_a_random_y_and_lasts_max_of_the_two(tmp_path):
    ds = UnpairedDataset(str(make_dataset(tmp_path)), "train", load_size=10, crop_size=8, seed=0)
    assert len(ds) == 5  # max(3, 5)
    real_x, real_y = ds[4]
    assert real_x.shape == real_y.shape == (3, 8, 8)
    # item 4 shows x number 4 mod 3 = 1, whose red is 10 -> 10 / 127.5 - 1
    assert real_x[0].mean().item() == pytest.approx(10 / 127.5 - 1, abs=1e-6)
    ys = {round(ds[i][1][1].mean().item() * 127.5 + 127.5) for i in range(5) for ds.epoch in (0, 1)}
    assert len(ys) > 1  # the y partner is drawn at random


def test_dataset_items_depend_only_on_seed_epoch_and_index(tmp_path):
    root = str(make_dataset(tmp_path))
    a = UnpairedDataset(root, "train", 10, 8, seed=0)
    b = UnpairedDataset(root, "train", 10, 8, seed=0)
    assert all(torch.equal(a[i][1], b[i][1]) for i in (4, 0, 2))  # any order, same result
    assert a.order(3) == b.order(3) and sorted(a.order(3)) == list(range(5))
    assert a.order(3) != a.order(4) or a.order(4) != a.order(5)


def test_dataset_finds_any_extension_case_in_subfolders_and_skips_broken_files(tmp_path, capsys):
    root = make_dataset(tmp_path, n_a=1, n_b=1)
    (root / "trainA" / "loop").symlink_to(root / "trainA")  # a link loop is not followed
    save(root / "trainA" / "deeper" / "UPPER.JPG", Image.new("RGB", (5, 5)))
    save(root / "trainA" / "x.WebP", Image.new("RGB", (5, 5)))
    (root / "trainA" / "notes.txt").write_text("not an image")
    (root / "trainA" / "broken.png").write_bytes(b"\x89PNG not really")
    ds = UnpairedDataset(str(root), "train", 10, 8)
    assert len(ds.paths["X"]) == 3  # a0.jpg, deeper/UPPER.JPG, x.WebP
    err = capsys.readouterr().err
    assert "broken.png" in err and "skipped 1 unreadable file in" in err  # "file", not "files"


def test_truncated_image_is_reported_and_replaced_when_met(tmp_path, capsys):
    root = make_dataset(tmp_path, n_a=2, n_b=1)
    Image.effect_noise((64, 64), 50).save(root / "trainA" / "a1.jpg")  # a header, then data
    whole = (root / "trainA" / "a1.jpg").read_bytes()
    (root / "trainA" / "a1.jpg").write_bytes(whole[:len(whole) // 2])  # header fine, data cut
    ds = UnpairedDataset(str(root), "train", 10, 8)  # decodes a0 in full, a1's header only
    assert "a1.jpg" not in capsys.readouterr().err
    real_x, _ = ds[1]
    assert "a1.jpg" in capsys.readouterr().err
    assert real_x[0].mean().item() == pytest.approx(0 / 127.5 - 1, abs=1e-6)  # a0 stood in


def test_missing_or_empty_domain_names_the_layout(tmp_path):
    (tmp_path / "trainA").mkdir()
    with pytest.raises(FileNotFoundError, match=r"neither trainA/ and trainB/ nor train/A/ and "):
        UnpairedDataset(str(tmp_path))
    (tmp_path / "trainB").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no images \(.jpg.*\) in .*trainA"):
        UnpairedDataset(str(tmp_path))


def test_the_train_slash_a_layout_is_read_as_well_and_named(tmp_path):
    authors = make_dataset(tmp_path / "authors", n_a=3, n_b=5)
    other = tmp_path / "other"
    (other / "train").mkdir(parents=True)
    (authors / "trainA").rename(other / "train" / "A")  # the same images, in train/A, train/B
    (authors / "trainB").rename(other / "train" / "B")
    ds = UnpairedDataset(str(other), "train", 10, 8)
    assert ds.layout == "train/A/ and train/B/"
    assert len(ds.paths["X"]) == 3 and len(ds.paths["Y"]) == 5  # A is X, B is Y, as in trainA
    assert UnpairedDataset(str(make_dataset(tmp_path / "a")), "train", 10, 8).layout == \
        "trainA/ and trainB/"
    assert data.has_split(str(other), "train") and not data.has_split(str(other), "test")


def test_a_dataroot_that_is_a_file_is_named_as_such(tmp_path):
    (tmp_path / "horse2zebra.zip").write_bytes(b"PK")
    with pytest.raises(NotADirectoryError, match=r"horse2zebra.zip is a file, not a folder "
                                                 r"\(unpack it first\): give the folder"):
        data.resolve_dataroot(str(tmp_path / "horse2zebra.zip"))
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        UnpairedDataset(str(tmp_path / "horse2zebra.zip"))


def test_a_domain_where_nothing_decodes_says_so(tmp_path, capsys):
    root = make_dataset(tmp_path, n_a=2, n_b=1)
    (root / "trainA" / "a0.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # fails at the header
    Image.effect_noise((64, 64), 50).save(root / "trainA" / "a1.jpg")
    whole = (root / "trainA" / "a1.jpg").read_bytes()
    (root / "trainA" / "a1.jpg").write_bytes(whole[:len(whole) // 2])  # header fine, data cut
    with pytest.raises(ValueError, match=r"none of the 2 image files in .*trainA decodes"):
        UnpairedDataset(str(root))
    err = capsys.readouterr().err
    assert "skipping" in err and "a0.jpg" in err and "a1.jpg" in err  # each bad file by name


def test_a_domain_of_one_file_that_does_not_decode_names_it(tmp_path, capsys):
    root = make_dataset(tmp_path, n_a=1, n_b=1)
    (root / "trainA" / "a0.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ValueError, match=r"the one image file in .*trainA, a0.jpg, does not "):
        UnpairedDataset(str(root))


def test_data_functions_raise_exceptions_never_system_exit(tmp_path, monkeypatch):
    # A notebook catches these; train.py's main prints "error: " + the message.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    with pytest.raises(FileExistsError, match="mine exists, but holds no toy.txt"):
        toy.make_toy("mine")
    with pytest.raises(FileNotFoundError, match="^--dataroot nowhere: no such folder"):
        data.resolve_dataroot("nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        UnpairedDataset("nowhere")


def test_dataset_pickles_and_loads_in_spawned_workers(tmp_path):
    # spawn (the default on macOS and Windows) sends each worker a pickled copy of the dataset
    ds = UnpairedDataset(str(make_dataset(tmp_path)), "train", 10, 8, seed=3)
    ds.epoch = 2
    copy = pickle.loads(pickle.dumps(ds))
    assert torch.equal(copy[4][1], ds[4][1]) and copy.epoch == 2
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2,
                                         multiprocessing_context="spawn")
    expected = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=0)
    for (x, y), (x0, y0) in zip(loader, expected, strict=True):  # 5 items: batches of 2, 2, 1
        assert torch.equal(x, x0) and torch.equal(y, y0)


def test_known_dataset_name_gets_the_download_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="`python data.py download horse2zebra`"):
        data.resolve_dataroot("horse2zebra")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        data.resolve_dataroot("my_photos")
    make_dataset(tmp_path / "datasets" / "horse2zebra")
    assert data.resolve_dataroot("horse2zebra").endswith("horse2zebra")
