"""Loss-curve plots drawn with Pillow alone (no matplotlib dependency).

[`plot_losses`][p2pkit.evaluation.plot.plot_losses] reads a training loss history (a list of dicts,
or a JSONL/CSV/JSON file) and draws the pix2pix losses, by default the generator's adversarial and
L1 terms and the discriminator's real/fake terms (paper section 3.1, Eq. 1-4), as a PNG: one panel
per loss or one panel with a legend, with axes, ticks, grid, labels and an optional moving average.
The learning rate a run logs with its losses is drawn the same way (``keys=["lr"]``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageDraw, ImageFont

from p2pkit.errors import ConfigError, DataError

__all__ = [
    "X_KEYS",
    "load_history",
    "moving_average",
    "nice_ticks",
    "plot_losses",
    "run_loss_names",
]

"""The loss terms a pix2pix run logs (generator GAN and L1 terms, discriminator real and fake)."""

X_KEYS = ("step", "iter", "iteration", "global_step", "epoch")
"""Columns tried, in this order, for the x axis when none is named."""

# Tableau-like colours that stay distinguishable for common colour-vision deficiencies.
_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
            (23, 190, 207), (140, 86, 75), (227, 119, 194)]  # fmt: skip
_GRID = (228, 228, 228)
_AXIS = (60, 60, 60)
_TEXT = (20, 20, 20)


def load_history(
    source: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
) -> list[dict[str, float]]:
    """Read a loss history into a list of rows of numbers.

    Args:
        source: rows already in memory, or a file: ``.jsonl`` (one JSON object per line), ``.csv``
            (a header row, then one row per log entry) or ``.json`` (a list of objects).

    Returns:
        One dict per log entry, keeping only the values that are numbers (or numeric strings).

    Raises:
        DataError: when the file is missing or cannot be parsed.
    """
    if not isinstance(source, str | os.PathLike):
        return [_numeric(row) for row in source]
    path = Path(source)
    if not path.is_file():
        raise DataError(f"{path}: loss history not found; point to the run's JSONL or CSV log")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [_numeric(row) for row in csv.DictReader(text.splitlines())]
    if suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a JSON list of objects, one per log entry")
        return [_numeric(row) for row in rows if isinstance(row, Mapping)]
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{number}: not a JSON object ({exc.msg}); fix or delete the line"
            ) from None
        if isinstance(row, Mapping):
            rows.append(_numeric(row))
    return rows


def _numeric(row: Mapping[str, Any]) -> dict[str, float]:
    """The entries of a row that are numbers or numeric strings, as floats (bools dropped)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float):
            out[str(key)] = float(value)
        elif isinstance(value, str):
            try:
                out[str(key)] = float(value)
            except ValueError:
                continue
    return out


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average; the first ``window - 1`` points average what exists so far."""
    if window <= 1:
        return list(values)
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """About ``target`` round tick values (steps of 1, 2 or 5 times a power of ten) in [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(target, 1)
    power = 10 ** math.floor(math.log10(raw))
    # The round step whose tick count comes closest to the target.
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda st: abs((hi - lo) / st - target))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(0.0 if abs(value) < step * 1e-9 else float(value))
        value = first + len(ticks) * step
    return ticks


def _format_tick(value: float, step: float) -> str:
    """A tick label with as many decimals as the step needs."""
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.1e}"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:.{decimals}f}"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at ``size`` pixels (a bitmap font on builds without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _series(rows: list[dict[str, float]], key: str, x_key: str | None) -> tuple[list, list]:
    """(x, y) of the rows that have a finite value for ``key``."""
    xs, ys = [], []
    for i, row in enumerate(rows):
        y = row.get(key)
        if y is None or not math.isfinite(y):
            continue
        x = row.get(x_key, float(i)) if x_key is not None else float(i)
        xs.append(x)
        ys.append(y)
    return xs, ys


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    series: list[tuple[str, list[float], list[float], tuple[int, int, int]]],
    *,
    title: str | None,
    x_label: str,
    smooth: int,
    legend: bool,
    font,
    small,
    u: int,
) -> None:
    """Draw one plot (axes, grid, ticks, labels, curves, optional legend) inside ``box``.

    ``u`` is the size of one output pixel on the (supersampled) canvas.
    """
    x0, y0, x1, y1 = box
    all_x = [x for _, xs, _, _ in series for x in xs]
    all_y = [y for _, _, ys, _ in series for y in ys]
    lo_x, hi_x = min(all_x), max(all_x)
    if hi_x == lo_x:
        lo_x, hi_x = lo_x - 1, hi_x + 1
    lo_y, hi_y = min(all_y), max(all_y)
    # A flat curve (a constant learning rate of 2e-4) gets a margin at its own scale.
    pad = (hi_y - lo_y) * 0.05 or abs(hi_y) * 0.1 or 1.0
    lo_y, hi_y = lo_y - pad, hi_y + pad
    y_ticks = nice_ticks(lo_y, hi_y)
    x_ticks = nice_ticks(lo_x, hi_x)
    y_step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else 1.0
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    y_labels = [_format_tick(t, y_step) for t in y_ticks]

    # Plot area: room on the left for y labels, below for x labels and the axis name, above for
    # the title.
    label_w = max(_text_size(draw, s, small)[0] for s in y_labels)
    _, text_h = _text_size(draw, "0", small)
    px0 = x0 + label_w + 14 * u
    px1 = x1 - 10 * u
    py0 = y0 + (text_h + 14 * u if title else 10 * u)
    py1 = y1 - 2 * text_h - 18 * u
    if px1 - px0 < 20 * u or py1 - py0 < 20 * u:
        raise ConfigError("plot_losses: the image 'size' is too small for the panels; enlarge it")

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (
            px0 + (x - lo_x) / (hi_x - lo_x) * (px1 - px0),
            py1 - (y - lo_y) / (hi_y - lo_y) * (py1 - py0),
        )

    for tick, text in zip(y_ticks, y_labels, strict=True):
        _, ty = to_px(lo_x, tick)
        draw.line([(px0, ty), (px1, ty)], fill=_GRID, width=u)
        draw.line([(px0 - 4 * u, ty), (px0, ty)], fill=_AXIS, width=u)
        tw, th = _text_size(draw, text, small)
        draw.text((px0 - 7 * u - tw, ty - th / 2 - u), text, fill=_TEXT, font=small)
    for tick in x_ticks:
        tx, _ = to_px(tick, lo_y)
        draw.line([(tx, py0), (tx, py1)], fill=_GRID, width=u)
        draw.line([(tx, py1), (tx, py1 + 4 * u)], fill=_AXIS, width=u)
        text = _format_tick(tick, x_step)
        tw, _ = _text_size(draw, text, small)
        draw.text((tx - tw / 2, py1 + 6 * u), text, fill=_TEXT, font=small)
    draw.rectangle([px0, py0, px1, py1], outline=_AXIS, width=u)
    xw, _ = _text_size(draw, x_label, small)
    draw.text(((px0 + px1 - xw) / 2, py1 + text_h + 10 * u), x_label, fill=_TEXT, font=small)
    if title:
        tw, _ = _text_size(draw, title, font)
        draw.text(((px0 + px1 - tw) / 2, y0 + 4 * u), title, fill=_TEXT, font=font)

    for _, xs, ys, colour in series:
        if smooth > 1:
            # The raw curve stays visible, faded, under its moving average.
            faded = tuple(int(c + (255 - c) * 0.7) for c in colour)
            _polyline(draw, [to_px(x, y) for x, y in zip(xs, ys, strict=True)], faded, u)
            ys = moving_average(ys, smooth)
        _polyline(draw, [to_px(x, y) for x, y in zip(xs, ys, strict=True)], colour, 2 * u)

    if legend:
        entries = [(name, colour) for name, _, _, colour in series]
        width = max(_text_size(draw, name, small)[0] for name, _ in entries) + 30 * u
        row_h = text_h + 8 * u
        lx1, ly = px1 - 6 * u, py0 + 6 * u
        lx0 = lx1 - width
        draw.rectangle(
            [lx0, ly, lx1, ly + len(entries) * row_h + 4 * u], fill="white", outline=_GRID, width=u
        )
        for name, colour in entries:
            cy = ly + 4 * u + row_h / 2
            draw.line([(lx0 + 6 * u, cy), (lx0 + 22 * u, cy)], fill=colour, width=3 * u)
            draw.text((lx0 + 26 * u, cy - text_h / 2 - u), name, fill=_TEXT, font=small)
            ly += row_h


def _polyline(
    draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], colour, width: int
) -> None:
    """A curve; a lone point is drawn as a dot so that one-entry histories still show."""
    if len(points) == 1:
        x, y = points[0]
        r = 2 * width
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    elif points:
        draw.line(points, fill=colour, width=width, joint="curve")


def run_loss_names(run_dir: str | os.PathLike[str]) -> tuple[str, ...] | None:
    """The loss terms the objective of a run logs (its ``loss_names``), or None if unknown.

    A plugin objective's extra terms (featmatch's ``G_FM``) are drawn that way. The
    objective is rebuilt from the run's ``recipe.toml``; a run whose objective cannot be
    built here (its plugin is not installed) gets None, the paper's terms.
    """
    from p2pkit.config import load_recipe
    from p2pkit.engine.build import build_objective
    from p2pkit.errors import P2PKitError

    path = Path(run_dir) / "recipe.toml"
    if not path.is_file():
        return None
    try:
        return tuple(build_objective(load_recipe(path).objective).loss_names)
    except (P2PKitError, AttributeError):
        return None


def plot_losses(
    history: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    out_png: str | os.PathLike[str],
    keys: Sequence[str] | None = None,
    *,
    layout: Literal["panels", "single"] = "panels",
    smooth: int = 0,
    x_key: str | None = None,
    size: tuple[int, int] = (960, 640),
    title: str | None = None,
) -> Path:
    """Draw loss curves to a PNG.

    Args:
        history: a list of dicts (one per log entry) or a ``.jsonl``/``.csv``/``.json`` file (see
            [`load_history`][p2pkit.evaluation.plot.load_history]).
        out_png: the PNG to write (parent folders are created).
        keys: the columns to draw, normally the run's objective's ``loss_names`` (see
            [`run_loss_names`][p2pkit.evaluation.plot.run_loss_names]); None draws those of
            the paper's objective (``G_GAN``, ``G_L1``, ``D_real``, ``D_fake``). Keys missing
            from the history are left out, but at least one must be present. ``["lr"]`` draws
            the learning rate a run logs with its losses.
        layout: ``"panels"`` draws one panel per loss in a grid (losses of different scales stay
            readable); ``"single"`` draws all in one panel with a legend.
        smooth: window of a trailing moving average drawn over the faded raw curve; 0 or 1 draws
            the raw values only.
        x_key: the column for the x axis; by default the first of
            [`X_KEYS`][p2pkit.evaluation.plot.X_KEYS] that the history has, else the entry number.
        size: ``(width, height)`` of the image in pixels.
        title: a heading over the whole figure.

    Returns:
        ``out_png`` as a `Path`; the image is RGB of exactly ``size``.

    Raises:
        DataError: when the history has none of ``keys``.
        ConfigError: for an unknown layout or an image too small to draw in.
    """
    if layout not in ("panels", "single"):
        raise ConfigError(f"plot_losses: layout '{layout}' is unknown; use 'panels' or 'single'")
    if keys is None:
        from p2pkit.objectives import Pix2PixObjective

        keys = Pix2PixObjective.loss_names
    rows = load_history(history)
    where = str(history) if isinstance(history, str | os.PathLike) else "the loss history"
    if x_key is None:
        x_key = next((k for k in X_KEYS if any(k in row for row in rows)), None)
    elif not any(x_key in row for row in rows):
        raise DataError(f"{where}: has no '{x_key}' column for the x axis; pick another x_key")
    series = []
    for i, key in enumerate(keys):
        xs, ys = _series(rows, key, x_key)
        if xs:
            series.append((key, xs, ys, _COLOURS[i % len(_COLOURS)]))
    if not series:
        available = sorted({k for row in rows for k in row} - set(X_KEYS))
        raise DataError(
            f"{where}: none of the losses {list(keys)} were logged "
            f"(found {available or 'nothing'}); pass keys that the log contains"
        )

    width, height = size
    if width < 64 or height < 64:
        raise ConfigError(f"plot_losses: size {size} is too small; use at least (64, 64)")
    # Drawn at twice the size and reduced with a Lanczos filter: Pillow draws lines and text
    # without antialiasing, and the reduction smooths them.
    u = 2
    image = Image.new("RGB", (width * u, height * u), "white")
    draw = ImageDraw.Draw(image)
    scale = min(width / 960, height / 640)
    font, small = _font(u * max(12, round(15 * scale))), _font(u * max(10, round(12 * scale)))
    top = 0
    if title:
        tw, th = _text_size(draw, title, font)
        draw.text(((width * u - tw) / 2, 8 * u), title, fill=_TEXT, font=font)
        top = th + 16 * u
    x_label = x_key or "log entry"
    common = {"x_label": x_label, "smooth": smooth, "font": font, "small": small, "u": u}
    if layout == "single":
        box = (8 * u, top + 4 * u, (width - 8) * u, (height - 4) * u)
        _draw_panel(draw, box, series, title=None, legend=True, **common)
    else:
        cols = math.ceil(math.sqrt(len(series)))
        grid_rows = math.ceil(len(series) / cols)
        cell_w = (width - 8) * u / cols
        cell_h = ((height - 4) * u - top) / grid_rows
        for i, entry in enumerate(series):
            r, c = divmod(i, cols)
            box = (
                int(8 * u + c * cell_w),
                int(top + 4 * u + r * cell_h),
                int(8 * u + (c + 1) * cell_w) - 8 * u,
                int(top + 4 * u + (r + 1) * cell_h) - 4 * u,
            )
            _draw_panel(draw, box, [entry], title=entry[0], legend=False, **common)
    image = image.resize((width, height), Image.Resampling.LANCZOS)

    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, format="PNG")
    return out
