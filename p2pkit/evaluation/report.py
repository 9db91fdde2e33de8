"""A self-contained HTML report of an evaluation run.

[`write_report`][p2pkit.evaluation.report.write_report] writes ``index.html`` with inline CSS and
JavaScript only: no external stylesheet, script, font or image. Every image the page shows is a file
next to it (thumbnails under ``thumbs/``) referenced by a relative path, so the folder can be
zipped, copied or opened offline. The page shows, as the paper presents its results (e.g. Figures
3-6 and Tables 1-6):

* links to related pages (a run's page and its evaluations' pages link each other);
* the aggregate metrics table, with each metric's spread and which direction is better;
* the loss-curve and learning-rate images (see [`p2pkit.evaluation.plot`][p2pkit.evaluation.plot]);
* the recipe/checkpoint details;
* training sample grids at full size, their columns labelled input | output | target;
* a grid of input | output | target thumbnails with each image's metrics, sortable by clicking a
  column header or by focusing it and pressing Enter or Space (names sort naturally: 2 before
  10); a thumbnail of an image file in the folder links to it at full size.

All text that comes from outside (names, metric names, metadata) is HTML-escaped.

Why this module is long: it writes one self-contained HTML page, and every value on it passes
through the same escaping and file-placement rules; split up, a new section could skip them.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import torch
from PIL import Image

from p2pkit.data.images import to_uint8
from p2pkit.errors import DataError

__all__ = ["IMAGE_ROLES", "ImageSource", "report_files", "write_report"]

IMAGE_ROLES = ("input", "output", "target")
"""The image columns of the grid, in order."""

ImageSource = str | os.PathLike[str] | torch.Tensor | np.ndarray | Image.Image
"""A path (relative to the report folder, or absolute), an image tensor ``(3, H, W)``,
``(1, 3, H, W)`` or ``(1, H, W)``, float in ``[-1, 1]`` or uint8, a uint8 ``(H, W, 3)`` or
``(H, W)`` array, or a PIL image."""

_CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px;
       color: #1a1a1a; background: #fff; }
h1 { font-size: 22px; margin: 0 0 16px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: middle; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 600; }
#grid img { display: block; max-width: 100%; image-rendering: auto; }
#grid th.sortable { cursor: pointer; user-select: none; white-space: nowrap; }
#grid th.sortable:focus { outline: 2px solid #1f6feb; outline-offset: -2px; }
#grid th.sortable::after { content: " \\2195"; color: #999; }
#grid th[aria-sort="ascending"]::after { content: " \\2191"; color: #000; }
#grid th[aria-sort="descending"]::after { content: " \\2193"; color: #000; }
#grid td.name { max-width: 220px; overflow-wrap: anywhere; }
img.losses { max-width: 100%; border: 1px solid #ddd; }
ul.links { margin: 4px 0 0; padding-left: 20px; }
figure.sample { margin: 0 0 16px; overflow-x: auto; }
figure.sample .roles { display: grid; grid-template-columns: repeat(3, 1fr); gap: 2px;
                       text-align: center; font-weight: 600; }
figure.sample .roles span { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
figure.sample img { display: block; max-width: none; }
pre { margin: 0; white-space: pre-wrap; font-size: 12px; }
.note { color: #666; font-size: 12px; }
"""

# Sorts the image grid by a column when its header is clicked, or focused (Tab) and Enter or Space
# is pressed; numbers sort numerically by the cells' data-value (empty values last), text columns
# naturally (numbers inside names by value: 2 before 10); a second activation reverses.
_JS = """
(function () {
  var table = document.getElementById("grid");
  if (!table) { return; }
  var names = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var headers = table.querySelectorAll("th.sortable");
  function sortBy(th) {
    var col = th.cellIndex;
    var numeric = th.getAttribute("data-type") === "number";
    var asc = th.getAttribute("aria-sort") !== "ascending";
    headers.forEach(function (h) { h.setAttribute("aria-sort", "none"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute("data-value");
      var y = b.cells[col].getAttribute("data-value");
      if (numeric) {
        var xe = x === "", ye = y === "";
        if (xe || ye) { return xe === ye ? 0 : (xe ? 1 : -1); }
        return asc ? parseFloat(x) - parseFloat(y) : parseFloat(y) - parseFloat(x);
      }
      return asc ? names.compare(x, y) : names.compare(y, x);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  headers.forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        sortBy(th);
      }
    });
  });
})();
"""


def _esc(value: Any) -> str:
    """HTML-escape any value's text, quotes included (safe in attributes too)."""
    return html.escape(str(value), quote=True)


def _href(path: Path, root: Path) -> str:
    """A relative, percent-encoded, HTML-escaped URL for a file under ``root``."""
    return _esc(quote(path.relative_to(root).as_posix()))


def _to_pil(image: torch.Tensor | np.ndarray | Image.Image) -> Image.Image:
    """An in-memory image -> an RGB (or L) PIL image."""
    if isinstance(image, Image.Image):
        # A converted copy is loaded now, so the source file may be closed afterwards.
        return image.copy() if image.mode == "L" else image.convert("RGB")
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise ValueError(
                f"expected an image tensor (3, H, W) or (1, H, W), got {tuple(t.shape)}"
            )
        if t.is_floating_point():
            # Images are float in [-1, 1] (the generator's tanh range).
            t = to_uint8(t)
        elif t.dtype != torch.uint8:
            raise ValueError(f"expected a float or uint8 image tensor, got {t.dtype}")
        array = t.permute(1, 2, 0).numpy()
    else:
        array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(array))


def _save_thumbnail(image: Image.Image, dest: Path, size: int) -> None:
    """Shrink to fit ``size`` x ``size`` (never enlarge) and save as PNG."""
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    thumb.save(dest, format="PNG")


def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _thumb_name(index: int, role: str) -> str:
    """Where the thumbnail of row ``index``'s ``role`` image goes, relative to the report."""
    return f"thumbs/{index:05d}-{role}.png"


def _inside_file(source: ImageSource, root: Path) -> bool:
    """Whether ``source`` is a file path that lies inside ``root`` (so it is shown as it is)."""
    if not isinstance(source, str | os.PathLike):
        return False
    path = Path(source)
    return _is_inside((path if path.is_absolute() else root / path).resolve(), root)


def report_files(
    out_dir: str | os.PathLike[str],
    rows: Sequence[Mapping[str, Any]],
    loss_plot: str | os.PathLike[str] | None = None,
    *,
    lr_plot: str | os.PathLike[str] | None = None,
    sample_grids: Sequence[tuple[str, str | os.PathLike[str]]] = (),
) -> list[str]:
    """The files [`write_report`][p2pkit.evaluation.report.write_report] writes for these arguments,
    relative to ``out_dir``.

    Lets a command check, before any work, that it replaces none of a user's files:
    ``index.html``, a thumbnail under ``thumbs/`` for every image not already inside the
    folder, ``losses.png`` and ``lr.png`` when the plots lie elsewhere, and a copy under
    ``samples/`` of every sample grid that lies elsewhere.

    Returns:
        Relative POSIX paths, ``index.html`` first.
    """
    root = Path(out_dir).resolve()
    names = ["index.html"]
    for i, row in enumerate(rows):
        for role in IMAGE_ROLES:
            source = row.get(role)
            if source is not None and not _inside_file(source, root):
                names.append(_thumb_name(i, role))
    for plot, name in ((loss_plot, "losses.png"), (lr_plot, "lr.png")):
        if plot is not None and not _is_inside(Path(plot).resolve(), root):
            names.append(name)
    names += [_grid_name(grid) for _, grid in sample_grids if not _inside_file(grid, root)]
    return names


def _grid_name(grid: str | os.PathLike[str]) -> str:
    """Where a copy of a sample grid lying outside the report goes, relative to the report."""
    return f"samples/{Path(grid).name}"


def _place_file(source: str | os.PathLike[str], root: Path, name: str, what: str) -> Path:
    """A file's path under ``root``: itself when it lies there, else a copy at ``root / name``."""
    path = Path(source)
    path = (path if path.is_absolute() else root / path).resolve()
    if not path.is_file():
        raise DataError(f"{path}: {what} not found; write it before the report or leave it out")
    if _is_inside(path, root):
        return path
    copied = root / name
    copied.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, copied)
    return copied


def _place_image(source: ImageSource, root: Path, dest: Path, size: int, what: str) -> Path:
    """Make an image available under ``root`` and return its path.

    Files already under ``root`` are used as they are; files elsewhere and in-memory images are
    written as thumbnails to ``dest`` so that the report folder stays self-contained.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        path = (path if path.is_absolute() else root / path).resolve()
        if not path.is_file():
            raise DataError(f"{what}: image file {path} not found; write it before the report")
        if _is_inside(path, root):
            return path
        try:
            with Image.open(path) as opened:
                image = _to_pil(opened)
        except OSError as exc:
            raise DataError(f"{what}: {path} is not a readable image ({exc})") from None
    else:
        image = _to_pil(source)
    _save_thumbnail(image, dest, size)
    return dest


def _metric_values(row: Mapping[str, Any]) -> dict[str, float | None]:
    """A row's metrics: its ``"metrics"`` mapping, plus any other top-level number."""
    values: dict[str, float | None] = {}
    nested = row.get("metrics")
    items = list(nested.items()) if isinstance(nested, Mapping) else []
    items += [(k, v) for k, v in row.items() if k not in ("name", "metrics", *IMAGE_ROLES)]
    for key, value in items:
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if value is None:
            values[str(key)] = None
        elif isinstance(value, int | float | np.number) and not isinstance(value, bool):
            values[str(key)] = float(value)
    return values


def _format_number(value: float | None) -> tuple[str, str]:
    """(shown text, data-value for sorting) of a metric value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013", ""
    if math.isinf(value):
        return ("\u221e" if value > 0 else "-\u221e"), repr(value)
    return f"{value:.4g}", repr(value)


def _direction(
    metric: str, better: Mapping[str, bool], closer_to: Mapping[str, float] | None = None
) -> str:
    """Which way a metric improves, in words ("" when unknown)."""
    if closer_to and metric in closer_to:
        return f"closer to {closer_to[metric]:g} is better"
    return {True: "higher is better", False: "lower is better"}.get(better.get(metric), "")


def _metrics_table(
    table: Mapping[str, Any], better: Mapping[str, bool], closer_to: Mapping[str, float]
) -> str:
    """HTML for the aggregate metrics: ``{metric: {stat: value}}`` or ``{metric: value}``.

    A column says, for each metric named in ``better`` or ``closer_to``, which direction is
    better.
    """
    columns: list[str] = []
    for stats in table.values():
        if isinstance(stats, Mapping):
            columns += [str(k) for k in stats if str(k) not in columns]
    has_plain = any(not isinstance(v, Mapping) for v in table.values())
    if has_plain and "value" not in columns:
        columns.insert(0, "value")
    head = "".join(f"<th>{_esc(c)}</th>" for c in ["metric", "better", *columns])
    body = []
    for metric, stats in table.items():
        cells = stats if isinstance(stats, Mapping) else {"value": stats}
        tds = []
        for column in columns:
            value = cells.get(column)
            if isinstance(value, int | float) and not isinstance(value, bool):
                tds.append(f'<td class="num">{_esc(_format_number(float(value))[0])}</td>')
            else:
                tds.append(f"<td>{_esc('' if value is None else value)}</td>")
        direction = _esc(_direction(str(metric), better, closer_to))
        body.append(f"<tr><th>{_esc(metric)}</th><td>{direction}</td>{''.join(tds)}</tr>")
    rows = "".join(body)
    return f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _meta_table(meta: Mapping[str, Any]) -> str:
    """HTML for recipe/checkpoint details; nested values are shown as indented JSON."""
    rows = []
    for key, value in meta.items():
        if isinstance(value, Mapping | list | tuple):
            text = json.dumps(value, indent=2, sort_keys=False, default=str)
            cell = f"<pre>{_esc(text)}</pre>"
        else:
            cell = _esc(value)
        rows.append(f"<tr><th>{_esc(key)}</th><td>{cell}</td></tr>")
    return f'<table class="meta"><tbody>{"".join(rows)}</tbody></table>'


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    title: str,
    rows: Sequence[Mapping[str, Any]],
    metrics_table: Mapping[str, Any] | None = None,
    loss_plot: str | os.PathLike[str] | None = None,
    meta: Mapping[str, Any] | None = None,
    thumb_size: int = 256,
    higher_is_better: Mapping[str, bool] | None = None,
    closer_to: Mapping[str, float] | None = None,
    links: Sequence[tuple[str, str]] = (),
    links_heading: str | None = None,
    lr_plot: str | os.PathLike[str] | None = None,
    sample_grids: Sequence[tuple[str, str | os.PathLike[str]]] = (),
    link_images: bool = False,
) -> Path:
    """Write ``<out_dir>/index.html``, a self-contained report of an evaluation.

    Args:
        out_dir: the report folder (created if needed); thumbnails go to ``thumbs/`` inside it.
        title: the page heading.
        rows: one mapping per image: ``"name"``; ``"input"``, ``"output"``, ``"target"`` as any
            [`ImageSource`][p2pkit.evaluation.report.ImageSource] (each optional); metric values
            under ``"metrics"`` and/or as other top-level numbers (e.g. a row of
            [`MetricSet.per_image`][p2pkit.evaluation.metrics.MetricSet.per_image] plus image
            entries). Image files inside ``out_dir`` are referenced as they are; other files and
            in-memory images are saved as PNG thumbnails.
        metrics_table: aggregate metrics, ``{metric: {stat: value}}`` (e.g.
            [`MetricSet.aggregate`][p2pkit.evaluation.metrics.MetricSet.aggregate]) or
            ``{name: value}`` (e.g. FCN-scores, colour histogram intersections).
        loss_plot: a PNG from
            [`p2pkit.evaluation.plot.plot_losses`][p2pkit.evaluation.plot.plot_losses]; copied into
            ``out_dir`` when it lies elsewhere.
        meta: recipe and checkpoint details (strings, numbers, or nested JSON-able values).
        thumb_size: the longest side of generated thumbnails, in pixels.
        higher_is_better: per metric, which way is better; the best value in each metric column
            is shown in bold and the aggregate table says it. Defaults to the built-in metrics'
            directions.
        closer_to: per metric that is best at a value (sharpness at 1), that value; the value
            nearest to it is shown in bold. Defaults to
            [`CLOSER_TO`][p2pkit.evaluation.metrics.CLOSER_TO].
        links: ``(text, URL)`` of related pages, the URL relative to ``out_dir`` (for example
            ``../eval-val/index.html``), listed under the heading.
        links_heading: a heading over the links; without one they form a line under the title.
        lr_plot: a PNG of the learning rate (``plot_losses`` with ``keys=["lr"]``); copied into
            ``out_dir`` as ``lr.png`` when it lies elsewhere.
        sample_grids: ``(caption, PNG)`` of training sample grids whose columns are input |
            output | target, shown at full size with their columns labelled; a grid lying
            elsewhere is copied to ``samples/`` (so their file names must differ).
        link_images: make each grid image that is a file inside ``out_dir`` a link to that file,
            so a click on the thumbnail opens the image at full size.

    Returns:
        The path of ``index.html``.

    Raises:
        DataError: when an image, a plot or a sample grid does not exist or cannot be read.
        ValueError: when two sample grids lying elsewhere have the same file name.
    """
    from p2pkit.evaluation.metrics import CLOSER_TO, HIGHER_IS_BETTER

    copies = [_grid_name(grid) for _, grid in sample_grids]
    if len(set(copies)) != len(copies):
        raise ValueError("sample_grids: two grids have the same file name; rename one")

    root = Path(out_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    better = dict(HIGHER_IS_BETTER, **(higher_is_better or {}))
    targets = dict(CLOSER_TO, **(closer_to or {}))

    metric_names: list[str] = []
    prepared = []
    for i, row in enumerate(rows):
        name = str(row.get("name", i))
        values = _metric_values(row)
        metric_names += [m for m in values if m not in metric_names]
        images: dict[str, Path | None] = {}
        for role in IMAGE_ROLES:
            source = row.get(role)
            if source is None:
                images[role] = None
                continue
            what = f"report row {i} ('{name}') {role}"
            images[role] = _place_image(source, root, root / _thumb_name(i, role), thumb_size, what)
        prepared.append((i, name, images, values))
    roles = [r for r in IMAGE_ROLES if any(images[r] is not None for _, _, images, _ in prepared)]

    # The best value of each metric column, to highlight.
    best: dict[str, float] = {}
    for metric in metric_names:
        finite = [
            v[metric]
            for *_, v in prepared
            if v.get(metric) is not None and math.isfinite(v[metric])
        ]
        if finite and metric in targets:
            best[metric] = min(finite, key=lambda v, t=targets[metric]: abs(v - t))
        elif finite and metric in better:
            best[metric] = max(finite) if better[metric] else min(finite)

    # Sortable headers take the keyboard focus (tabindex) and say how the grid is sorted.
    sortable = '<th scope="col" tabindex="0" aria-sort="none" class="sortable"'
    head = [f'{sortable} data-type="number">#</th>', f'{sortable} data-type="text">name</th>']
    head += [f'<th scope="col">{_esc(role)}</th>' for role in roles]
    for metric in metric_names:
        direction = _direction(metric, better, targets)
        hint = f"{metric} ({direction})" if direction else metric
        head.append(f'{sortable} data-type="number" title="{_esc(hint)}">{_esc(metric)}</th>')
    body = []
    for i, name, images, values in prepared:
        cells = [f'<td class="num" data-value="{i}">{i + 1}</td>',
                 f'<td class="name" data-value="{_esc(name)}">{_esc(name)}</td>']  # fmt: skip
        for role in roles:
            path = images[role]
            if path is None:
                cells.append("<td></td>")
            else:
                alt = _esc(f"{role} {name}")
                img = f'<img src="{_href(path, root)}" alt="{alt}" loading="lazy">'
                if link_images and not _is_inside(path, root / "thumbs"):
                    # The file itself is in the folder: the thumbnail opens it at full size.
                    img = f'<a href="{_href(path, root)}" title="full size">{img}</a>'
                cells.append(f"<td>{img}</td>")
        for metric in metric_names:
            value = values.get(metric)
            text, sort_value = _format_number(value)
            cls = "num best" if value is not None and best.get(metric) == value else "num"
            cells.append(f'<td class="{cls}" data-value="{_esc(sort_value)}">{_esc(text)}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")

    sections = [f"<h1>{_esc(title)}</h1>"]
    if links:
        items = "".join(f'<li><a href="{_esc(quote(url))}">{_esc(text)}</a></li>'
                        for text, url in links)  # fmt: skip
        heading = f"<h2>{_esc(links_heading)}</h2>" if links_heading else ""
        sections.append(f'<nav>{heading}<ul class="links">{items}</ul></nav>')
    if metrics_table:
        sections.append(
            f"<h2>Aggregate metrics</h2>{_metrics_table(metrics_table, better, targets)}"
        )
    plots = (("Training losses", loss_plot, "losses.png", "loss curves"),
             ("Learning rate", lr_plot, "lr.png", "learning-rate curve"))  # fmt: skip
    for heading, source, name, alt in plots:
        if source is not None:
            plot = _place_file(source, root, name, f"{alt} image (draw it with plot_losses)")
            sections.append(
                f'<h2>{heading}</h2><img class="losses" src="{_href(plot, root)}" alt="{alt}">'
            )
    if meta:
        sections.append(f"<h2>Recipe and checkpoint</h2>{_meta_table(meta)}")
    if sample_grids:
        figures = []
        for caption, source in sample_grids:
            grid = _place_file(source, root, _grid_name(source), "sample grid")
            with Image.open(grid) as opened:
                width = opened.width
            labels = "".join(f"<span>{role}</span>" for role in IMAGE_ROLES)
            figures.append(
                f'<figure class="sample"><div class="roles" style="width: {width}px">{labels}'
                f'</div><a href="{_href(grid, root)}"><img src="{_href(grid, root)}" '
                f'alt="{_esc(caption)}: input | output | target"></a>'
                f"<figcaption>{_esc(caption)}: input | output | target, left to right"
                "</figcaption></figure>"
            )
        sections.append(f"<h2>Training samples ({len(figures)})</h2>{''.join(figures)}")
    if prepared:
        sections.append(
            f"<h2>Images ({len(prepared)})</h2>"
            '<p class="note">Click a column header, or focus it with Tab and press Enter or Space, '
            "to sort; the best value of each metric is bold."
            + (" Click an image to open it at full size." if link_images else "")
            + "</p>"
            f'<table id="grid"><thead><tr>{"".join(head)}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )
    # Images already inside the folder are shown as they are; cap them at the thumbnail size.
    size_css = f"#grid td img {{ max-width: {thumb_size}px; max-height: {thumb_size}px; }}\n"
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>{_CSS}{size_css}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + f"\n<script>{_JS}</script>\n</body>\n</html>\n"
    )
    index = root / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
