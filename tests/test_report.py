"""Tests for p2pkit.evaluation.report (self-contained HTML) and p2pkit.evaluation.plot (PNG)."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import torch
from PIL import Image

from p2pkit.errors import DataError
from p2pkit.evaluation.metrics import MetricSet
from p2pkit.evaluation.plot import load_history, moving_average, nice_ticks, plot_losses
from p2pkit.evaluation.report import write_report

EVIL = "<script>alert('x')</script> & \"quoted\""


def _history(n: int = 60) -> list[dict[str, float]]:
    return [
        {
            "epoch": step // 20,
            "iter": step,
            "G_GAN": 1.0 + math.sin(step / 5),
            "G_L1": 30.0 * math.exp(-step / 20),
            "D_real": 0.6 + 0.1 * math.cos(step),
            "D_fake": 0.4 + 0.1 * math.sin(step),
        }
        for step in range(n)
    ]


class _References(HTMLParser):
    """Collects every src/href attribute and the script tags of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("src", "href") and value is not None:
                self.urls.append(value)
        if tag == "script":
            self.scripts.append(dict(attrs))


def _assert_not_blank(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        assert image.size == size
        array = np.asarray(image.convert("RGB"))
    colours = np.unique(array.reshape(-1, 3), axis=0)
    assert len(colours) > 20  # background, axes, text and curves
    dark = (array.sum(axis=2) < 200).mean()
    assert 0.001 < dark < 0.5  # some ink, but not a filled canvas


def test_plot_losses_panels(tmp_path: Path) -> None:
    out = plot_losses(_history(), tmp_path / "plots" / "losses.png", size=(640, 480), smooth=5)
    _assert_not_blank(out, (640, 480))


def test_plot_losses_single_panel_from_files(tmp_path: Path) -> None:
    history = _history()
    jsonl = tmp_path / "loss.jsonl"
    jsonl.write_text("\n".join(json.dumps(row) for row in history) + "\n\n")
    out = plot_losses(jsonl, tmp_path / "single.png", layout="single", size=(400, 300))
    _assert_not_blank(out, (400, 300))

    csv_file = tmp_path / "loss.csv"
    lines = ["iter,G_GAN,G_L1,note"] + [f"{r['iter']},{r['G_GAN']},{r['G_L1']},x" for r in history]
    csv_file.write_text("\n".join(lines) + "\n")
    rows = load_history(csv_file)
    assert rows[1] == {"iter": 1.0, "G_GAN": history[1]["G_GAN"], "G_L1": history[1]["G_L1"]}
    # D_real / D_fake are missing from this log; the present keys are still drawn.
    _assert_not_blank(plot_losses(csv_file, tmp_path / "csv.png", size=(300, 200)), (300, 200))


def test_plot_losses_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="none of the losses"):
        plot_losses([{"iter": 1, "other": 2.0}], tmp_path / "x.png")
    with pytest.raises(DataError, match="not found"):
        plot_losses(tmp_path / "missing.jsonl", tmp_path / "x.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"G_GAN": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        plot_losses(bad, tmp_path / "x.png")


def test_plot_helpers() -> None:
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert nice_ticks(0.0, 10.0) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert nice_ticks(-0.3, 0.31) == pytest.approx([-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3])


def _report(tmp_path: Path) -> Path:
    out = tmp_path / "report"
    (out / "images").mkdir(parents=True)
    # An image already inside the report folder, one outside it, and in-memory images.
    Image.new("RGB", (32, 32), (200, 30, 30)).save(out / "images" / "inside space.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.new("RGB", (32, 32), (30, 200, 30)).save(elsewhere / "outside.png")
    plot = plot_losses(_history(), elsewhere / "losses.png", size=(320, 240))

    g = torch.Generator().manual_seed(0)
    fake = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    real = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    names = ["1.jpg", EVIL, "3.jpg"]
    ms = MetricSet(["l1", "psnr"])
    ms.update(fake, real, names=names)
    rows = []
    for i, entry in enumerate(ms.per_image()):
        rows.append(
            {
                **entry,
                "input": "images/inside space.png" if i == 0 else fake[i],
                "output": fake[i],
                "target": elsewhere / "outside.png" if i == 2 else np.zeros((20, 30, 3), np.uint8),
            }
        )
    meta = {"recipe": "facades", "checkpoint": EVIL, "settings": {"lambda_L1": 100, "note": EVIL}}
    return write_report(
        out,
        title=f"Report {EVIL}",
        rows=rows,
        metrics_table={**ms.aggregate(), "fcn_per_pixel_acc": 0.5},
        loss_plot=plot,
        meta=meta,
        thumb_size=64,
    )


def test_report_references_only_existing_local_files(tmp_path: Path) -> None:
    index = _report(tmp_path)
    assert index.name == "index.html"
    page = index.read_text(encoding="utf-8")
    refs = _References()
    refs.feed(page)
    assert len(refs.urls) == 3 * 3 + 1  # nine thumbnails and the loss plot
    for url in refs.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url  # no http:, https:, data:, //host
        target = (index.parent / unquote(parts.path)).resolve()
        assert target.is_file(), url
        assert index.parent in target.parents, url  # inside the report folder
    assert "http://" not in page and "https://" not in page
    # Inline CSS and JS only.
    assert "<link" not in page
    assert refs.scripts == [{}]
    assert (index.parent / "losses.png").is_file()
    assert "images/inside%20space.png" in page


def test_report_escapes_text(tmp_path: Path) -> None:
    page = _report(tmp_path).read_text(encoding="utf-8")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in page
    assert page.count("<script>") == 1


def test_report_table_is_sortable_and_shows_metrics(tmp_path: Path) -> None:
    page = _report(tmp_path).read_text(encoding="utf-8")
    assert page.count('class="sortable" data-type="number"') == 3  # '#', l1, psnr
    assert 'data-type="text">name</th>' in page
    assert "addEventListener" in page
    assert "fcn_per_pixel_acc" in page and "median" in page
    assert "lambda_L1" in page


def test_report_missing_image_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        write_report(tmp_path, title="t", rows=[{"name": "a", "output": "nope.png"}])


def test_the_loss_plot_of_a_run_draws_its_objectives_terms(tmp_path: Path) -> None:
    from p2pkit.evaluation.plot import run_loss_names

    (tmp_path / "recipe.toml").write_text('name = "r"\n[objective]\nname = "l1"\n')
    names = run_loss_names(tmp_path)
    assert names is not None and "G_L1" in names
    rows = [{"iteration": i, "G_L1": 1.0 / (i + 1), "G_extra": 0.1 * i} for i in range(20)]
    out = plot_losses(rows, tmp_path / "p.png", (*names, "G_extra"), size=(320, 240))
    _assert_not_blank(out, (320, 240))
    assert run_loss_names(tmp_path / "missing") is None
