"""Not the paper: what a run writes for people to look at: sample grids, the loss log, its curves,
per-epoch metrics (the toy's ground-truth L1, FID/KID) and their curve, and index.html, a static
page of all of these with the run's settings; and RunWriter, which writes them (and the
checkpoints) during a run. Pillow and the standard library only.

A sample grid has one row per test image: real_x | fake_y | rec_x for X, real_y | fake_x | rec_y
for Y, the translations and reconstructions of Eq. 2, laid out as the paper's Fig. 4.
"""
import csv
import html
import math
import os
import re
import time

import torch
from PIL import Image, ImageDraw, ImageFont

import checkpoints
from data import UnpairedDataset, has_split, to_image

LOG_COLUMNS = ["epoch", "iter", "total_iter", "GAN(G)", "GAN(F)", "cyc_x", "cyc_y", "idt", "D_X",
               "D_Y", "s_per_it", "lr"]
COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#ff7f0e", "#8c564b"]
# The columns of a sample grid: the X rows' image, then the Y rows' (Eq. 2's two cycles)
GRID_COLUMNS = [("real_x", "real_y"), ("fake_y = G(x)", "fake_x = F(y)"),
                ("rec_x = F(G(x))", "rec_y = G(F(y))")]


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
    """The rows of a CSV file (the loss log, metrics.csv) as dicts; none if it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_metrics(out_dir, epoch, values, protocol=None):
    """Append one row to out_dir/metrics.csv: the epoch and {name: value}, e.g.
    {"L1 G(x) vs y": 0.05, "L1 F(y) vs x": 0.04} or {"FID G": 80.1}. A new name adds a column.
    With a protocol (how and on what it was measured, e.g. evaluate.py's dataroot, size and image
    counts), the row goes in a protocol column and replaces any row of that epoch and protocol."""
    path = os.path.join(out_dir, "metrics.csv")
    rows = read_log(path)
    columns = ["epoch"] + (["protocol"] if protocol or any("protocol" in r for r in rows) else [])
    for name in [k for r in rows for k in r] + list(values):
        if name not in columns:
            columns.append(name)
    row = {"epoch": epoch, **{k: f"{float(v):.6g}" for k, v in values.items()}}
    if protocol:
        key = (int(epoch), protocol)
        rows = [r for r in rows if (int(float(r["epoch"])), r.get("protocol")) != key]
        row["protocol"] = protocol
    rows.append(row)
    with open(path + ".tmp", "w", newline="") as f:
        w = csv.DictWriter(f, columns, restval="")
        w.writeheader()
        w.writerows(rows)
    os.replace(path + ".tmp", path)


def protocols(rows):
    """The protocols of metrics.csv's rows, in order of first appearance: protocol k (from 1)
    names the curves "FID G (k)", so that numbers measured two ways never share a curve."""
    return list(dict.fromkeys(r["protocol"] for r in rows if r.get("protocol")))


def read_metrics(path):
    """{name: [(epoch, value), ...]} from metrics.csv, by epoch; when an epoch has two rows (a
    run resumed after a crash repeats it), the later value counts. A row with a protocol adds
    its number to each name: "FID G (2)"."""
    series, rows = {}, read_log(path)
    number = {p: k for k, p in enumerate(protocols(rows), 1)}
    for row in rows:
        tag = f" ({number[row['protocol']]})" if row.get("protocol") else ""
        for name, v in row.items():
            if name not in ("epoch", "protocol") and v not in ("", None):
                series.setdefault(name + tag, {})[int(float(row["epoch"]))] = float(v)
    return {name: sorted(s.items()) for name, s in series.items()}


def ticks(top, n=4, integer=False):
    """Round tick values 0, s, 2s, ... up to the first at or above `top`, with s one, two or five
    times a power of ten, and at least n steps' worth of detail; s >= 1 when `integer`."""
    top = top if top > 0 else 1.0
    raw = top / n
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    step = max(step, 1) if integer else step
    return [k * step for k in range(math.ceil(top / step - 1e-9) + 1)]


def font(size=14):
    """Pillow's own font at `size` pixels (FreeType, Pillow >= 10.1), else its small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, OSError):
        return ImageFont.load_default()


def draw_panel(img, box, series, x_name, y_name, x_max, integer_x=False, markers=False,
               baselines=None):
    """Curves {name: [(x, y), ...]} in the plot area box = (left, top, right, bottom), from 0 on
    both axes (x up to x_max), with tick labels on both, a grid, the axes' names and a legend.
    baselines {name: {label: y}}: dashed lines in curve name's colour, labelled at the right; one
    above 1.5 times the highest curve is only named, at the top, so as not to flatten the curves."""
    draw, small = ImageDraw.Draw(img), font(13)
    left, top, right, bottom = box
    points = [p for s in series.values() for p in s if math.isfinite(p[1])]
    highest = max((y for _, y in points), default=1)
    lines = [(COLOURS[i % len(COLOURS)], label, y) for i, name in enumerate(series)
             for label, y in (baselines or {}).get(name, {}).items() if math.isfinite(y)]
    xs = ticks(x_max, 5, integer_x)
    ys = ticks(max([highest] + [y for _, _, y in lines if y <= 1.5 * highest]), 4)

    def at(x, y):  # data to pixels: x to the right, y up
        return (left + (right - left) * x / xs[-1], bottom - (bottom - top) * y / ys[-1])

    for x in xs:
        px = at(x, 0)[0]
        draw.line([px, top, px, bottom], fill="#e4e4e4")
        label = f"{x:g}" if x < 1e6 else f"{x:.3g}"
        draw.text((px, bottom + 5), label, fill="black", font=small, anchor="mt")
    for y in ys:
        py = at(0, y)[1]
        draw.line([left, py, right, py], fill="#e4e4e4")
        draw.text((left - 6, py), f"{round(y, 10):g}", fill="black", font=small, anchor="rm")
    draw.rectangle(box, outline="black")
    draw.text(((left + right) / 2, bottom + 24), x_name, fill="black", font=font(), anchor="mt")
    draw.text((left, top - 8), y_name, fill="black", font=font(), anchor="ld")
    legend_x = left + draw.textlength(y_name, font=font()) + 30
    for i, (name, s) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        xy = [at(x, y) for x, y in s if math.isfinite(y)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        for px, py in xy if markers or len(xy) == 1 else []:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        draw.text((legend_x, top - 8), name, fill=colour, font=font(), anchor="ld")
        legend_x += draw.textlength(name, font=font()) + 20
    placed = []  # (left end, right end, bottom) of each label: one near another moves left
    for colour, label, y in sorted(lines, key=lambda line: -line[2]):
        py = at(0, y)[1] if y <= ys[-1] else None  # None: off the scale, named at the top
        for px in range(left, right, 10) if py is not None else []:
            draw.line([px, py, min(px + 5, right), py], fill=colour)
        text = f"{label} {y:.3f}" + (" (above)" if py is None else "")
        base, end, width = (py or top + 17) - 2, right - 6, draw.textlength(text, font=small)
        while any(abs(b - base) < 15 and s < end and end - width < e for s, e, b in placed):
            end = min(s for s, e, b in placed if abs(b - base) < 15) - 12
        draw.text((end, base), text, fill=colour, font=small, anchor="rb")
        placed.append((end - width, end, base))


def plot_panels(panels, png_path, x_name, integer_x=False, markers=False, size=(900, 300),
                baselines=None):
    """One panel per entry of [(y_name, {curve name: [(x, y), ...]}), ...], stacked, to a PNG;
    baselines as draw_panel takes them."""
    W, H = size
    img = Image.new("RGB", (W, H * len(panels)), "white")
    x_max = max((x for _, series in panels for s in series.values() for x, _ in s), default=1)
    for p, (y_name, series) in enumerate(panels):  # one x axis for all: epochs line up
        draw_panel(img, (70, p * H + 36, W - 25, p * H + H - 52), series, x_name, y_name, x_max,
                   integer_x, markers, baselines)
    img.save(png_path)


def plot_losses(log_path, png_path):
    """Loss curves by iteration: the generators' terms on top, the discriminators' below."""
    rows = read_log(log_path)
    panels = []
    for y_name, names in (("loss of G and F", ["GAN(G)", "GAN(F)", "cyc_x", "cyc_y", "idt"]),
                          ("loss of D_X and D_Y", ["D_X", "D_Y"])):
        series = {n: [(float(r["total_iter"]), float(r[n])) for r in rows
                      if r.get(n) not in ("", None)] for n in names}
        panels.append((y_name, {n: s for n, s in series.items() if s}))
    plot_panels(panels, png_path, "iteration")


def split_baselines(series):
    """({name: points}, {name: {label: latest value}}) from read_metrics' series: a metric named
    NAME (label) beside a metric NAME is a baseline of NAME, a score that learns nothing. The
    toy's: L1 G(x) vs y (input) and L1 G(x) vs y (mean y), from ground_truth_errors' G input and
    G mean, the numbers the log line prints; F's likewise."""
    curves, baselines = {}, {}
    for name, points in series.items():
        m = re.fullmatch(r"(.+) \((.+)\)", name)
        if m and m.group(1) in series:
            baselines.setdefault(m.group(1), {})[m.group(2)] = points[-1][1]
        else:
            curves[name] = points
    return curves, baselines


def plot_metrics(csv_path, png_path):
    """Metric curves by epoch, one panel per kind of metric, named by its first word (L1, FID,
    KID), since their scales differ; each evaluated epoch is a dot, each baseline a dashed line."""
    curves, baselines = split_baselines(read_metrics(csv_path))
    panels = {}
    for name, s in curves.items():
        panels.setdefault(name.split()[0], {})[name] = s
    if panels:
        plot_panels(list(panels.items()), png_path, "epoch", integer_x=True, markers=True,
                    baselines=baselines)


def epoch_of(file_name):
    """The number in a sample grid's name, epoch_012.png -> 12, for sorting past epoch 999."""
    digits = re.findall(r"\d+", file_name)
    return int(digits[-1]) if digits else -1


def grid_html(out_dir, name):
    """An <img> of a sample grid, scaled by a whole factor so that a small crop is shown about 128
    screen pixels a side (the grid at most 1024 wide and 800 high), blocky rather than blurred
    (image-rendering: pixelated)."""
    with Image.open(os.path.join(out_dir, "samples", name)) as img:
        w, h = img.size
    scale = max(1, min(math.ceil(128 / max(1, w // 3)), 1024 // w, 800 // h))  # 3 images a row
    src = "samples/" + html.escape(name, quote=True)
    blocky = " class='pixelated'" if scale > 1 else ""  # a shrunk large grid stays smooth
    heads = "".join(f"<span>{html.escape(x)}<br>{html.escape(y)}</span>" for x, y in GRID_COLUMNS)
    return (f"<div class='grid' style='width:{w * scale}px'><div class='heads'>{heads}</div>"
            f"<a href='{src}'><img{blocky} src='{src}' width='{w * scale}' "
            f"height='{h * scale}' alt='{html.escape(name)}'></a></div>")


def metrics_table(rows):
    """An HTML table of metrics.csv's rows, one line per epoch and protocol (the later value of a
    name wins), the latest epoch first, each protocol after its number (see protocols)."""
    by_epoch, number = {}, {p: k for k, p in enumerate(protocols(rows), 1)}
    for r in rows:
        p = r.get("protocol") or ""
        r = {**r, "protocol": f"({number[p]}) {p}"} if p else r
        by_epoch.setdefault((int(float(r["epoch"])), p), {}).update({k: v for k, v in r.items()
                                                                     if v})
    columns = list(rows[0]) if rows else []
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = ["<tr>" + "".join(f"<td>{html.escape(r.get(c, ''))}</td>" for c in columns) + "</tr>"
            for _, r in sorted(by_epoch.items(), reverse=True)]
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def write_index(out_dir, title, settings=None):
    """index.html: the run's state (status.txt, from RunWriter), the metrics curve and table,
    the loss curves (both drawn here from metrics.csv and loss_log.csv), every epoch's sample
    grid latest first, the run's settings (out: out_dir where it says None). A static page:
    open it from disk, no server, nothing downloaded."""
    samples = os.path.join(out_dir, "samples")
    grids = sorted((f for f in os.listdir(samples) if f.endswith(".png")) if os.path.isdir(samples)
                   else [], key=lambda f: (epoch_of(f), f), reverse=True)
    log, metrics = os.path.join(out_dir, "loss_log.csv"), os.path.join(out_dir, "metrics.csv")
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em} img{max-width:100%;height:auto}"
             " img.pixelated{image-rendering:pixelated} table{border-collapse:collapse}"
             " td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
             " .grid{max-width:100%} .heads{display:flex} .heads span{flex:1;text-align:center}"
             "</style>", f"<h1>{html.escape(title)}</h1>"]
    status = os.path.join(out_dir, "status.txt")
    if os.path.exists(status):
        with open(status, encoding="utf-8") as f:
            parts.append(f"<p><b>This run:</b> {html.escape(f.read().strip())}</p>")
    curves, baselines = split_baselines(read_metrics(metrics))
    if curves:
        plot_metrics(metrics, os.path.join(out_dir, "metrics.png"))
        parts.append("<h2>Metrics by epoch</h2><img src='metrics.png' alt='metrics curve'>")
        if baselines:
            values = "; ".join(f"{name}: " + ", ".join(f"{label} {v:.3f}" for label, v in b.items())
                               for name, b in baselines.items())
            parts.append("<p>Dashed: what learning nothing scores, the input returned unchanged "
                         "and the target domain's mean image returned for every input "
                         f"({html.escape(values)}). A generator that does not get below its "
                         "mean image has learned nothing about the shapes in its input.</p>")
        hidden = {f"{name} ({label})" for name, b in baselines.items() for label in b}
        parts.append(metrics_table([{k: v for k, v in r.items() if k not in hidden}
                                    for r in read_log(metrics)])
                     + "<p><a href='metrics.csv'>metrics.csv</a></p>")
    if os.path.exists(log):
        plot_losses(log, os.path.join(out_dir, "loss_curves.png"))
        parts.append("<h2>Losses</h2><img src='loss_curves.png' alt='loss curves'>"
                     "<p><a href='loss_log.csv'>loss_log.csv</a></p>")
    if grids:
        parts.append("<h2>Samples, latest epoch first</h2><p>Each grid row: real_x | fake_y = G(x)"
                     " | rec_x = F(G(x)), then real_y | fake_x = F(y) | rec_y = G(F(y)).</p>")
    for g in grids:
        heading = f"epoch {epoch_of(g)}" if re.fullmatch(r"epoch_\d+\.png", g) else g[:-4]
        parts.append(f"<h3>{html.escape(heading)}</h3>{grid_html(out_dir, g)}")
    if settings:
        settings = {**settings, "out": settings.get("out") or out_dir}  # None: train.py's default
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in settings.items())
        parts.append(f"<h2>Settings</h2><table>{rows}</table>")
    with open(os.path.join(out_dir, "index.html.tmp"), "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")
    os.replace(os.path.join(out_dir, "index.html.tmp"), os.path.join(out_dir, "index.html"))


class RunWriter:
    """Everything a training run writes, done by rank 0 alone (under torchrun the other ranks
    hold the same state and write nothing): log lines and loss_log.csv, sample grids, curves,
    index.html, and the checkpoints latest.pt and epoch_NNN.pt (checkpoints.py)."""

    def __init__(self, out, args, is_main, state, at, G, F, root, device, score=None):
        self.out, self.args, self.is_main, self.state, self.at = out, args, is_main, state, at
        self.G, self.F, self.score = G, F, score  # score: the toy's errors (line, values)
        if is_main:  # the same few images in each epoch's grid: the test split's, else training
            samples = UnpairedDataset(root, "test" if has_split(root, "test") else "train",
                                      args.crop_size, args.crop_size)
            self.sample_x, self.sample_y = (
                torch.stack([samples.load(d, i) for i in range(args.n_samples)]).to(device)
                for d in "XY")
        self.latest = os.path.join(out, "latest.pt")
        self.log_path = os.path.join(out, "loss_log.csv")
        self.saved_at = at["total_iters"] if at["total_iters"] else None  # resumed from there
        self.resumed_at = self.saved_at
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

    def last_save(self, nan=False):
        """What the last save holds, for an error message. After a NaN (nan=True) it says only
        what is known: its weights were finite, which does not make them good; and if this run
        resumed from it and met the NaN before saving again, it names the newest kept copy."""
        if self.saved_at is None:
            return "Nothing was saved in this run yet."
        if not nan:
            return (f"{self.latest} holds the state saved at iteration {self.saved_at}: go on "
                    "from it with --resume.")
        said = (f"{self.latest} holds iteration {self.saved_at}, whose weights were finite but "
                "may already be on their way to the NaN")
        if self.saved_at != self.resumed_at:
            return f"{said}: go on from it with --resume."
        kept = checkpoints.newest_good_copy(self.out)
        if kept is None:
            return (f"{said}, and this run met the NaN before its next save; no kept copy "
                    "epoch_NNN.pt is there to go back to: start again with a smaller --lr.")
        return (f"{said}, and this run met the NaN before its next save: go back to the newest "
                f"kept copy, `cp {kept} {self.latest}`, then --resume.")

    def end_of_epoch(self, epoch, n_epochs):
        """Step (5): a sample grid, the toy's errors, the page and its curves, the checkpoints."""
        if self.is_main:
            save_samples(self.G, self.F, self.sample_x, self.sample_y,
                         os.path.join(self.out, "samples", f"epoch_{epoch:03d}.png"))
            if self.score is not None:
                line, values = self.score()
                print(f"epoch {epoch}/{n_epochs} | {line.split(' | ', 1)[1]}", flush=True)
                append_metrics(self.out, epoch, values)
            self.page(f"running: epoch {epoch} of {n_epochs} done")
        keep = epoch % self.args.save_epoch_freq == 0
        self.checkpoint(os.path.join(self.out, f"epoch_{epoch:03d}.pt") if keep else None)

    def page(self, state):
        """index.html with the run's state, kept in status.txt for whoever writes the page next
        (evaluate.py, adding FID): a page that says running long after its time belongs to a run
        that was killed."""
        with open(os.path.join(self.out, "status.txt"), "w", encoding="utf-8") as f:
            f.write(f"{state} (at {time.strftime('%Y-%m-%d %H:%M')})\n")
        write_index(self.out, f"CycleGAN: {self.out}",
                    {**{k: v for k, v in vars(self.args).items() if k != "explicit"},
                     "out": self.out})

    def finish(self, stopped):
        """The page's last state, at the end of a run: finished, or stopped (Ctrl-C, a signal,
        --max_iters, an error) after epoch k of n, which --resume continues."""
        if not self.is_main:
            return
        n, k, i = self.args.n_epochs + self.args.n_epochs_decay, self.at["epoch"], self.at["iter"]
        if stopped or k < n:
            where = f"at epoch {k + 1} of {n}, iteration {i}" if i else f"after epoch {k} of {n}"
            self.page(f"stopped {where}; --resume continues it")
        else:
            self.page(f"finished: {n} of {n} epochs")

    def summary(self):
        page = os.path.join(self.out, "index.html")  # written at the end of each epoch
        return (f"checkpoint {self.latest}" + (f", samples {page}" if os.path.exists(page) else "")
                + (f"\n{self.score()[0]}" if self.score and self.is_main else ""))
