"""Worked examples for download.py: fetching and unpacking a dataset, tested against a local web
server on 127.0.0.1, never the internet; nothing half-done is kept."""
import http.server
import io
import os
import subprocess
import sys
import threading
import zipfile

import pytest

import download


def zip_bytes(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in entries.items():
            z.writestr(name, content)
    return buf.getvalue()


@pytest.fixture
def server():
    """A web server on 127.0.0.1 serving {path: (body, declared length or None)}."""
    files = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path not in files:
                self.send_error(404)
                return
            body, length = files[self.path]
            self.send_response(200)
            if length is not None:  # without it, the end of the connection ends the file
                self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    httpd.shutdown()


def test_download_unpacks_a_good_zip(tmp_path, server):
    url, files = server
    body = zip_bytes({f"facades/{d}/1.jpg": b"x" for d in ("trainA", "trainB", "testA", "testB")})
    files["/facades.zip"] = (body, len(body))
    folder = download.download("facades", str(tmp_path), url)
    assert (tmp_path / "facades" / "trainB" / "1.jpg").read_bytes() == b"x"
    assert folder == str(tmp_path / "facades")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["facades"]  # no zip or .part left


SPLITS = ("trainA", "trainB", "testA", "testB")


def test_download_refuses_entries_outside_the_target(tmp_path, server):
    url, files = server
    body = zip_bytes({"maps/trainA/1.jpg": b"x", "../escaped.txt": b"gotcha"})
    files["/maps.zip"] = (body, len(body))
    with pytest.raises(ValueError, match="unsafe path '../escaped.txt': nothing was unpacked"):
        download.download("maps", str(tmp_path / "datasets"), url)
    assert list(tmp_path.iterdir()) == []  # no escaped.txt, and the datasets/ it made is gone


def test_truncated_download_leaves_nothing_behind(tmp_path, server, monkeypatch):
    url, files = server
    body = zip_bytes({"maps/trainA/1.jpg": b"x" * 1000})
    files["/maps.zip"] = (body[:100], len(body))  # the connection ends early
    monkeypatch.setenv("CYCLEGAN_DATASETS_URL", url)  # a mirror, set by environment
    with pytest.raises(OSError, match="could not download .*stopped at 100 of"):
        download.download("maps", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_connection_closed_half_way_is_an_incomplete_download(tmp_path, server):
    url, files = server
    body = zip_bytes({f"maps/{d}/1.jpg": b"x" * 1000 for d in SPLITS})
    files["/maps.zip"] = (body[:len(body) // 2], None)  # no length declared: nothing to check
    # half a zip has no central directory (it is at the end): zipfile says "File is not a zip
    # file", which blames the file rather than the connection
    with pytest.raises(OSError, match=r"could not unpack .*maps\.zip: the download is incomplete "
                                      r"or damaged \(File is not a zip file\); nothing was kept"):
        download.download("maps", str(tmp_path), url)
    assert list(tmp_path.iterdir()) == []


def test_an_archive_damaged_inside_leaves_no_partial_dataset(tmp_path, server):
    url, files = server
    entries = {f"facades/{d}/1.jpg": b"x" for d in SPLITS}
    entries["facades/testB/2.jpg"] = b"abcdefgh" * 100  # stored as is: its bytes are in the zip
    body = zip_bytes(entries).replace(b"abcdefgh" * 10, b"abcdefgX" * 10, 1)  # CRC-32 now wrong
    files["/facades.zip"] = (body, len(body))
    with pytest.raises(OSError, match="could not unpack .*Bad CRC-32.*nothing was kept"):
        download.download("facades", str(tmp_path), url)
    # 1.jpg of every split unpacked before the damage was met: all of it went with the rest
    assert list(tmp_path.iterdir()) == []


def test_an_archive_without_both_splits_is_not_kept(tmp_path, server):
    url, files = server
    body = zip_bytes({"facades/trainA/1.jpg": b"x", "facades/trainB/1.jpg": b"x"})  # no test
    files["/facades.zip"] = (body, len(body))
    with pytest.raises(ValueError, match="holds no complete dataset: facades/ lacks testA/ and "
                                         "testB/; nothing was kept"):
        download.download("facades", str(tmp_path), url)
    assert list(tmp_path.iterdir()) == []
    body = zip_bytes({f"facades/{s}/{d}/1.jpg": b"x" for s in ("train", "test") for d in "AB"})
    files["/facades.zip"] = (body, len(body))  # the other layout is complete
    assert download.download("facades", str(tmp_path), url) == str(tmp_path / "facades")
    with pytest.raises(FileExistsError, match="facades exists already: train with it, or remove"):
        download.download("facades", str(tmp_path), url)  # never unpacked over a dataset


def test_an_archive_lacking_some_folders_names_exactly_those(tmp_path, server):
    url, files = server
    body = zip_bytes({"facades/trainA/1.jpg": b"x"})  # one folder of four
    files["/facades.zip"] = (body, len(body))
    with pytest.raises(ValueError, match="facades/ lacks trainB/, testA/ and testB/; nothing"):
        download.download("facades", str(tmp_path), url)
    body = zip_bytes({f"facades/{s}/{d}/1.jpg": b"x" for s, d in (("train", "A"), ("test", "B"))})
    files["/facades.zip"] = (body, len(body))  # the other layout, half of it
    with pytest.raises(ValueError, match="facades/ lacks train/B/ and test/A/; nothing"):
        download.download("facades", str(tmp_path), url)
    body = zip_bytes({f"{d}/1.jpg": b"x" for d in SPLITS})  # no facades/ folder around them
    files["/facades.zip"] = (body, len(body))
    with pytest.raises(ValueError, match=r"holds no folder facades/ at its top \(it holds: testA, "
                                         r"testB, trainA, trainB\); nothing was kept"):
        download.download("facades", str(tmp_path), url)
    assert list(tmp_path.iterdir()) == []


def test_data_py_download_runs_the_download_command(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "facades.zip").write_bytes(zip_bytes({f"facades/{d}/1.jpg": b"x" for d in SPLITS}))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, os.path.join(root, "data.py"), "download", "facades",
                           "--to", str(tmp_path / "datasets"), "--url", mirror.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "datasets" / "facades" / "testB" / "1.jpg").read_bytes() == b"x"
    assert done.stdout.endswith(f"facades: ready in {tmp_path / 'datasets' / 'facades'}; train "
                                f"with: python train.py --dataroot {tmp_path / 'datasets'}"
                                "/facades\n")


def test_download_command_line_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert download.main(["download", "facades", "--to", str(tmp_path / "afile")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --to {tmp_path / 'afile'} is a file, not a folder: name a folder to " \
                  "unpack into\n"
    assert download.main(["download", "facades", "--to", str(tmp_path / "afile" / "datasets")]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --to {tmp_path / 'afile' / 'datasets'}: cannot write there (Not a " \
                  "directory); pick another folder\n"
    assert download.main(["download", "facades", "--to", str(tmp_path), "--url",
                      "example.org/cyclegan"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --url example.org/cyclegan: not a URL; write it with its "
                          "scheme, e.g. https://example.org/cyclegan")
    assert err.count("\n") == 1
    assert download.main(["download", "facades", "--to", str(tmp_path), "--url",
                      (tmp_path / "mirror").as_uri()]) == 1  # file://, but no facades.zip there
    err = capsys.readouterr().err
    assert err.startswith("error: could not download file://") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == [tmp_path / "afile"]
