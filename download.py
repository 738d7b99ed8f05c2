"""Not the paper: fetching the authors' CycleGAN datasets and unpacking them into datasets/NAME,
the layout data.py reads: `python data.py download NAME` (or `python download.py download NAME`).

Nothing half-done is ever kept: the archive goes to a temporary file, unpacks into a temporary
folder, and becomes datasets/NAME only once it unpacked whole and holds both splits. Functions
raise OSError or ValueError; only main() prints errors.
"""
import http.client
import os
import shutil
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
import zlib

from data import DATASETS, has_split

DEFAULT_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"  # the authors' server


def fetch(url, path):
    """Write the file at `url` to `path`, with a progress line; OSError if it stops short."""
    with open(path, "wb") as f, urllib.request.urlopen(url, timeout=60) as r:
        size, done = int(r.headers.get("Content-Length") or 0), 0
        while chunk := r.read(1 << 20):
            f.write(chunk)
            done += len(chunk)
            print(f"\r{url}: {done / 2**20:.1f} of {size / 2**20:.1f} MiB", end="", flush=True)
        print()
    if size and done != size:
        raise OSError(f"stopped at {done} of {size} bytes")


def unpack(archive, aside, url):
    """Unpack a zip into the empty folder `aside`, refusing entries that would land outside it."""
    with zipfile.ZipFile(archive) as z:
        root = os.path.realpath(aside)
        for member in z.namelist():
            target = os.path.realpath(os.path.join(root, member))
            if os.path.commonpath([root, target]) != root:
                raise ValueError(f"{url} holds an unsafe path {member!r}: nothing was unpacked")
        z.extractall(root)  # checks each entry's CRC-32: a damaged archive raises BadZipFile


def missing_folders(folder):
    """The split folders a dataset lacks, in the layout it comes closest to: trainA/, trainB/,
    testA/, testB/ (the authors'), or train/A/ ... test/B/; none when both splits are there."""
    if has_split(folder, "train") and has_split(folder, "test"):
        return []
    layouts = [[f"{p}{d}" for p in ("train", "test") for d in "AB"],
               [f"{p}/{d}" for p in ("train", "test") for d in "AB"]]
    lacking = [[f + "/" for f in names if not os.path.isdir(os.path.join(folder, f))]
               for names in layouts]
    return min(lacking, key=len)  # on a tie, the authors' layout


def download(name, to="datasets", base_url=None):
    """Fetch NAME.zip from the authors' server (or a mirror) and unpack it into `to`/NAME.

    The archive downloads to a temporary file and unpacks into a temporary folder next to the
    target, renamed to `to`/NAME only once both splits are there: a failure at any point leaves
    nothing behind (entries that would land outside the folder are refused).
    """
    flag = "--url" if base_url else "CYCLEGAN_DATASETS_URL"
    base_url = base_url or os.environ.get("CYCLEGAN_DATASETS_URL") or DEFAULT_URL
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https", "ftp", "file"):
        raise ValueError(f"{flag} {base_url}: not a URL; write it with its scheme, e.g. "
                         f"https://{base_url.split('://')[-1]} or file:///path/to/folder")
    if os.path.exists(to) and not os.path.isdir(to):
        raise NotADirectoryError(f"--to {to} is a file, not a folder: name a folder to unpack into")
    folder = os.path.join(to, name)
    if os.path.exists(folder):
        raise FileExistsError(f"{folder} exists already: train with it, or remove it to download "
                              "it again")
    url = f"{base_url.rstrip('/')}/{name}.zip"
    again = "Run the command again, or pass --url with a mirror"
    made_to, archive, aside = not os.path.isdir(to), None, None
    try:
        try:
            os.makedirs(to, exist_ok=True)
            fd, archive = tempfile.mkstemp(prefix=f".{name}.", suffix=".zip.part", dir=to)
            os.close(fd)
            aside = tempfile.mkdtemp(prefix=f".{name}.", suffix=".part", dir=to)
        except OSError as e:
            raise OSError(f"--to {to}: cannot write there ({e.strerror or e}); pick another "
                          "folder") from None
        try:
            fetch(url, archive)
        except (OSError, http.client.HTTPException) as e:
            raise OSError(f"could not download {url}: {e}. {again}") from None
        try:
            unpack(archive, aside, url)
        except (zipfile.BadZipFile, EOFError, zlib.error) as e:  # cut short, or bytes changed
            raise OSError(f"could not unpack {url}: the download is incomplete or damaged ({e}); "
                          f"nothing was kept. {again}") from None
        except OSError as e:  # the disk: full, or not writable
            raise OSError(f"could not unpack {url} into {to}: {e.strerror or e}; nothing was "
                          "kept. Free some space, or pick another folder with --to") from None
        unpacked = os.path.join(aside, name)
        if not os.path.isdir(unpacked):
            found = sorted(os.listdir(aside))[:5]
            raise ValueError(f"{url} holds no folder {name}/ at its top (it holds: "
                             f"{', '.join(found) or 'nothing'}); nothing was kept")
        missing = missing_folders(unpacked)
        if missing:
            listed = ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "") + missing[-1]
            raise ValueError(f"{url} holds no complete dataset: {name}/ lacks {listed}; "
                             "nothing was kept")
        os.replace(unpacked, folder)
    finally:
        if archive:
            os.remove(archive)
        if aside:
            shutil.rmtree(aside, ignore_errors=True)
        if made_to and os.path.isdir(to) and not os.listdir(to):
            os.rmdir(to)
    print(f"{name}: ready in {folder}; train with: python train.py --dataroot {folder}")
    return folder


def main(argv=None):
    """`python data.py download NAME` (or `python download.py download NAME`): one line
    `error: ...` and exit status 1 on failure."""
    import argparse
    parser = argparse.ArgumentParser(description="Download one of the authors' CycleGAN datasets.")
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="fetch NAME.zip and unpack it into --to/NAME")
    dl.add_argument("name", choices=DATASETS)
    dl.add_argument("--to", default="datasets", help="folder to unpack into (default datasets/)")
    dl.add_argument("--url", default=None, help="base URL of a mirror (or set "
                    f"CYCLEGAN_DATASETS_URL; default {DEFAULT_URL})")
    a = parser.parse_args(argv)
    try:
        download(a.name, a.to, a.url)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
