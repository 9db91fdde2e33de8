"""The pages ``p2pkit report`` writes: a run page and evaluation pages that link each other.

One tiny run is trained, evaluated (with the FCN-score) and reported once for the module. The
first tests read the files; the others open the pages in headless Chromium through Playwright
and click, type and follow links as a reader would. They skip, saying why, where Playwright or
Chromium is missing (``.ci/run`` installs both).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from p2pkit.cli import cli
from p2pkit.evaluation.plot import plot_losses
from p2pkit.evaluation.report import write_report


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """A copy of the tiny run, evaluated with a 5-step FCN-score segmenter, then reported."""
    base = tmp_path_factory.mktemp("pages")
    run = Path(shutil.copytree(tiny_run, base / "runs" / "tiny"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("P2PKIT_CACHE_DIR", str(base / "cache"))
        result = invoke(
            "evaluate", run, "--fcn-score", "on", "--segmenter-steps", 5, "--no-progress"
        )
        assert result.exit_code == 0, result.output
        result = invoke("report", run)
        assert result.exit_code == 0, result.output
    return run


def page_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------ the files


def test_report_writes_the_run_page_and_links_it_with_every_evaluation_page(run: Path) -> None:
    run_page, eval_page = run / "report" / "index.html", run / "eval-val" / "index.html"
    assert '<a href="../eval-val/index.html">eval-val: val split, 2 images' in page_text(run_page)
    assert '<a href="../report/index.html">run page of tiny' in page_text(eval_page)
    result = invoke("report", run)
    assert result.output.split() == [str(run_page), str(eval_page)]


def test_metrics_json_and_the_page_record_the_segmenters_settings(run: Path) -> None:
    fcn = json.loads((run / "eval-val" / "metrics.json").read_text())["fcn_scores"]
    assert fcn["segmenter_settings"] == {
        "component": "fcn_small",
        "steps": 5,
        "crop": 16,  # the default: half the run's 32 px crop size
        "seed": 0,
        "image_size": [32, 32],
        "palette_size": fcn["classes"],
    }
    page = page_text(run / "eval-val" / "index.html")
    assert (
        "component fcn_small; training steps 5; crops 16 x 16 px; seed 0; image size 32 x 32; "
        f"palette size {fcn['classes']}"
    ) in page


def test_the_aggregate_table_shows_each_metrics_spread_and_better_direction(run: Path) -> None:
    page = page_text(run / "eval-val" / "index.html")
    table = page[page.index('<table class="summary">') :]
    table = table[: table.index("</table>")]
    assert "<th>better</th>" in table and "<th>std</th>" in table and "<th>median</th>" in table
    assert "<tr><th>l1</th><td>lower is better</td>" in table
    assert "<tr><th>psnr</th><td>higher is better</td>" in table
    assert "<tr><th>FCN per_pixel_acc</th><td>higher is better</td>" in table


def test_the_run_page_shows_the_learning_rate_and_labelled_full_size_sample_grids(
    run: Path,
) -> None:
    page = page_text(run / "report" / "index.html")
    assert "<h2>Learning rate</h2>" in page and (run / "report" / "lr.png").is_file()
    grids = sorted((run / "samples").glob("*.png"))
    assert grids
    for grid in grids:
        copy = run / "report" / "samples" / grid.name
        assert copy.read_bytes() == grid.read_bytes()
        with Image.open(grid) as image:
            width = image.width
        assert (
            f'<div class="roles" style="width: {width}px"><span>input</span><span>output</span>'
            f"<span>target</span></div>"
        ) in page


def test_report_keeps_a_users_run_page_even_when_the_run_has_evaluations(
    run: Path, tmp_path: Path
) -> None:
    copy = Path(shutil.copytree(run, tmp_path / "tiny"))
    (copy / "report" / ".p2pkit-outputs.json").unlink()
    (copy / "report" / "index.html").write_text("the user's write-up")
    before = page_text(copy / "eval-val" / "index.html")
    result = invoke("report", copy)
    assert result.exit_code == 2 and "index.html" in result.stderr
    assert page_text(copy / "report" / "index.html") == "the user's write-up"
    assert page_text(copy / "eval-val" / "index.html") == before


def test_a_constant_learning_rate_gets_an_axis_at_its_own_scale(tmp_path: Path) -> None:
    def drawn(lr: float) -> np.ndarray:
        rows = [{"iteration": i, "lr": lr} for i in range(10)]
        with Image.open(plot_losses(rows, tmp_path / f"{lr}.png", ["lr"], size=(320, 160))) as im:
            return np.asarray(im.convert("L"), dtype=np.int16)

    # On an axis from -1 to 1 both flat lines would be drawn alike; at their own scale the tick
    # labels read their values.
    changed = np.abs(drawn(2e-4) - drawn(4e-4)) > 64
    assert changed.sum() > 50


# ------------------------------------------------------------------------ in a real browser


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 2000})
    yield context.new_page()
    context.close()


def names_page(tmp_path: Path) -> Path:
    """A report whose rows are named 1 to 12, in the order a plain text sort gives."""
    names = sorted(str(n) for n in range(1, 13))  # 1, 10, 11, 12, 2, ...
    rows = [
        {"name": name, "output": np.full((8, 8, 3), 10 * int(name), np.uint8), "l1": int(name)}
        for name in names
    ]
    return write_report(tmp_path / "names", title="names", rows=rows)


def grid_names(page) -> list[str]:
    return page.eval_on_selector_all(
        "#grid tbody td.name", "cells => cells.map(c => c.textContent)"
    )


def test_clicking_the_name_header_sorts_names_naturally(page, tmp_path: Path) -> None:
    page.goto(names_page(tmp_path).as_uri())
    header = page.locator("#grid th", has_text="name")
    header.click()
    assert grid_names(page) == [str(n) for n in range(1, 13)]
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert grid_names(page) == [str(n) for n in range(12, 0, -1)]
    assert header.get_attribute("aria-sort") == "descending"


def test_sortable_headers_are_reached_with_tab_and_sort_with_enter_or_space(
    page, tmp_path: Path
) -> None:
    page.goto(names_page(tmp_path).as_uri())
    focused = []
    for _ in range(3):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.textContent"))
    assert focused == ["#", "name", "l1"]
    page.keyboard.press("Enter")  # on l1: the values are the names' numbers
    assert grid_names(page) == [str(n) for n in range(1, 13)]
    page.keyboard.press(" ")
    assert grid_names(page) == [str(n) for n in range(12, 0, -1)]
    sorts = page.eval_on_selector_all(
        "#grid th.sortable", "hs => hs.map(h => h.getAttribute('aria-sort'))"
    )
    assert sorts == ["none", "none", "descending"]
    assert page.evaluate("window.scrollY") == 0  # Space sorted instead of scrolling


def test_the_run_page_and_the_evaluation_page_link_each_other(page, run: Path) -> None:
    page.goto((run / "report" / "index.html").as_uri())
    assert page.title() == "p2pkit run: tiny"
    page.get_by_role("link", name="eval-val", exact=False).click()
    page.wait_for_load_state()
    assert page.title() == "p2pkit evaluation: tiny, val"
    page.get_by_role("link", name="run page of tiny", exact=False).click()
    page.wait_for_load_state()
    assert page.title() == "p2pkit run: tiny"


def loaded_images(page) -> list[dict[str, object]]:
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    return page.eval_on_selector_all(
        "img",
        """imgs => imgs.map(i => ({src: i.src, width: i.naturalWidth,
                                   link: i.closest('a') ? i.closest('a').href : null}))""",
    )


def test_thumbnails_load_and_open_their_full_size_images(page, run: Path) -> None:
    page.goto((run / "eval-val" / "index.html").as_uri())
    images = loaded_images(page)
    thumbnails = [i for i in images if "/images/" in str(i["src"])]
    assert len(thumbnails) == 2 * 3  # input, output, target of the two val images
    for image in images:
        assert image["width"] > 0, image["src"]
    for thumbnail in thumbnails:
        full = Path(unquote(urlsplit(str(thumbnail["link"])).path))
        assert full.is_file() and run / "eval-val" / "images" in full.parents
        with Image.open(full) as opened:
            assert thumbnail["width"] == opened.width


def test_the_run_pages_curves_and_sample_grids_load(page, run: Path) -> None:
    page.goto((run / "report" / "index.html").as_uri())
    images = loaded_images(page)
    sources = [Path(unquote(urlsplit(str(i["src"])).path)).name for i in images]
    assert sources[:2] == ["losses.png", "lr.png"] and len(sources) > 2
    for image in images:
        assert image["width"] > 0, image["src"]
