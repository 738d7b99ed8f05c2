"""What a training run writes for people to look at: sample grids, the loss log and its curves,
and an index.html gallery. Pillow and the standard library only.

A sample grid has one row per test image: real_x | fake_y | rec_x for X, real_y | fake_x | rec_y
for Y, the translations and reconstructions of Fig. 1 and Eq. 2 (arXiv:1703.10593v7).
"""
import csv
import html
import os
import time

import torch
from PIL import Image, ImageDraw

import checkpoints
from data import to_image

LOG_COLUMNS = ["epoch", "iter", "total_iter", "GAN(G)", "GAN(F)", "cyc_x", "cyc_y", "idt", "D_X",
               "D_Y", "s_per_it", "lr"]
COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#ff7f0e", "#8c564b"]


@torch.no_grad()
def save_samples(G, F, sample_x, sample_y, path):
    """A PNG grid: rows real_x | G(x) | F(G(x)), then real_y | F(y) | G(F(y))."""
    fake_y = G(sample_x)
    rec_x = F(fake_y)  # forward cycle, Eq. 2
    fake_x = F(sample_y)
    rec_y = G(fake_x)  # backward cycle, Eq. 2
    rows = list(zip(sample_x, fake_y, rec_x)) + list(zip(sample_y, fake_x, rec_y))
    H, W = sample_x.shape[-2:]
    grid = Image.new("RGB", (3 * W, len(rows) * H), "white")
    for r, row in enumerate(rows):
        for c, t in enumerate(row):
            grid.paste(to_image(t), (c * W, r * H))
    grid.save(path)


def format_time(seconds):
    """A duration for the log line's ETA: 1d 02:03:04."""
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    return (f"{d}d " if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def append_log(path, row, keep_until=None):
    """Append one row to the CSV loss log. keep_until: on resume, drop rows from after the
    checkpoint (written before a crash), so each iteration appears once."""
    rows = read_log(path)
    if keep_until is not None:
        rows = [r for r in rows if int(float(r["total_iter"])) <= keep_until]
    if row is not None:
        rows.append({k: row[k] for k in LOG_COLUMNS})
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, LOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def read_log(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot_losses(log_path, png_path, size=(900, 320)):
    """Loss curves drawn with Pillow: the generators' terms on top, the discriminators' below."""
    rows = read_log(log_path)
    panels = [["GAN(G)", "GAN(F)", "cyc_x", "cyc_y", "idt"], ["D_X", "D_Y"]]
    W, H = size
    img = Image.new("RGB", (W, H * len(panels)), "white")
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 60, 20, 30, 30
    for p, names in enumerate(panels):
        y0 = p * H
        series = {n: [(float(r["total_iter"]), float(r[n])) for r in rows
                      if r.get(n) not in ("", None)] for n in names}
        points = [pt for s in series.values() for pt in s]
        draw.rectangle([left, y0 + top, W - right, y0 + H - bottom], outline="black")
        if not points:
            continue
        x_max = max(x for x, _ in points) or 1.0
        y_max = max(y for _, y in points) * 1.05 or 1.0
        for k in range(5):  # y-axis ticks
            v = y_max * k / 4
            ty = y0 + H - bottom - (H - top - bottom) * k / 4
            draw.line([left - 4, ty, left, ty], fill="black")
            draw.text((4, ty - 6), f"{v:.3g}", fill="black")
        draw.text((W - right - 120, y0 + H - bottom + 8), f"iteration (max {int(x_max)})",
                  fill="black")
        for i, (name, s) in enumerate(series.items()):
            colour = COLOURS[i % len(COLOURS)]
            xy = [(left + (W - left - right) * x / x_max,
                   y0 + H - bottom - (H - top - bottom) * y / y_max) for x, y in s]
            if len(xy) > 1:
                draw.line(xy, fill=colour, width=2)
            elif xy:
                draw.ellipse([xy[0][0] - 2, xy[0][1] - 2, xy[0][0] + 2, xy[0][1] + 2], fill=colour)
            draw.text((left + 10 + 90 * i, y0 + 8), name, fill=colour)
    img.save(png_path)


def write_index(out_dir, title):
    """index.html: the loss curves, then every epoch's sample grid, newest first."""
    grids = sorted(f for f in os.listdir(os.path.join(out_dir, "samples")) if f.endswith(".png"))
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em} img{max-width:100%}</style>",
             f"<h1>{html.escape(title)}</h1>",
             "<p>Each grid row: real_x | fake_y = G(x) | rec_x = F(G(x)), then "
             "real_y | fake_x = F(y) | rec_y = G(F(y)).</p>",
             "<h2>Losses</h2><img src='loss_curves.png' alt='loss curves'>",
             "<p><a href='loss_log.csv'>loss_log.csv</a></p>"]
    for g in reversed(grids):
        name = html.escape(g)
        parts.append(f"<h2>{name[:-4].replace('_', ' ')}</h2>"
                     f"<img src='samples/{name}' alt='{name}'>")
    with open(os.path.join(out_dir, "index.html.tmp"), "w") as f:
        f.write("\n".join(parts) + "\n")
    os.replace(os.path.join(out_dir, "index.html.tmp"), os.path.join(out_dir, "index.html"))


class RunWriter:
    """Everything a training run writes, done by rank 0 alone (under torchrun the other ranks
    hold the same state and write nothing): log lines and loss_log.csv, sample grids, curves,
    index.html, and the checkpoints latest.pt and epoch_NNN.pt (checkpoints.py)."""

    def __init__(self, out, args, is_main, state, at, G, F, sample_x, sample_y, score=None):
        self.out, self.args, self.is_main, self.state, self.at = out, args, is_main, state, at
        self.G, self.F, self.sample_x, self.sample_y, self.score = G, F, sample_x, sample_y, score
        self.latest = os.path.join(out, "latest.pt")
        self.log_path = os.path.join(out, "loss_log.csv")
        self.saved_at = at["total_iters"] if at["total_iters"] else None  # resumed from there
        self.sums, self.window_start, self.window_iters = {}, time.time(), 0
        if is_main:  # on resume, drop log rows written after the checkpoint
            append_log(self.log_path, None, keep_until=at["total_iters"])

    def log(self, values, epoch, n_epochs, per_epoch, lr, run_iters):
        """Step (4): every --print_every iterations, the mean losses since the last line."""
        self.window_iters += 1
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        if self.at["iter"] % self.args.print_every and self.at["iter"] != per_epoch:
            return
        s_per_it = (time.time() - self.window_start) / self.window_iters
        mean = {k: v / self.window_iters for k, v in self.sums.items()}
        self.sums, self.window_start, self.window_iters = {}, time.time(), 0
        if not self.is_main:
            return
        terms = [f"{k} {v:.3f}" for k, v in mean.items()]  # G and F's terms, then D_X, D_Y
        eta = format_time(s_per_it * (run_iters - self.at["total_iters"]))
        print(f"epoch {epoch}/{n_epochs} iter {self.at['iter']}/{per_epoch} | "
              f"{' '.join(terms[:-2])} | {' '.join(terms[-2:])} | {s_per_it:.2f} s/it | "
              f"ETA {eta}", flush=True)
        append_log(self.log_path, {
            "epoch": epoch, "iter": self.at["iter"], "total_iter": self.at["total_iters"],
            "idt": "", "s_per_it": f"{s_per_it:.4f}", "lr": f"{lr:.3g}",
            **{k: f"{v:.5f}" for k, v in mean.items()}})

    def checkpoint(self, also_keep=None):
        """latest.pt (and first the kept copy, if asked: a kill between the two then loses
        nothing, since latest.pt does not yet count the epoch as done)."""
        if self.saved_at == self.at["total_iters"] and also_keep is None:
            return
        state = self.state()  # on every rank: it checks that the ranks agree
        if self.is_main:
            for path in ([also_keep] if also_keep else []) + [self.latest]:
                checkpoints.save_checkpoint(path, state)
        self.saved_at = self.at["total_iters"]

    def last_save(self):
        """Where the last good state is, for an error message."""
        if self.saved_at is None:
            return "Nothing was saved in this run yet."
        return (f"{self.latest} holds the last good state, from iteration "
                f"{self.saved_at}: go on from it with --resume.")

    def end_of_epoch(self, epoch, n_epochs):
        """Step (5): a sample grid, the curves, the gallery, then the checkpoints."""
        if self.is_main:
            save_samples(self.G, self.F, self.sample_x, self.sample_y,
                         os.path.join(self.out, "samples", f"epoch_{epoch:03d}.png"))
            plot_losses(self.log_path, os.path.join(self.out, "loss_curves.png"))
            write_index(self.out, f"CycleGAN: {self.out}")
            if self.score is not None:
                print(f"epoch {epoch}/{n_epochs} | {self.score()}", flush=True)
        keep = epoch % self.args.save_epoch_freq == 0
        self.checkpoint(os.path.join(self.out, f"epoch_{epoch:03d}.pt") if keep else None)

    def summary(self):
        page = os.path.join(self.out, "index.html")  # written at the end of each epoch
        return (f"checkpoint {self.latest}" + (f", samples {page}" if os.path.exists(page) else "")
                + (f"\n{self.score(final=True)}" if self.score and self.is_main else ""))
