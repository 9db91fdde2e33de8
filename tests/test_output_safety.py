"""Commands never overwrite what the user owns, and names read from files stay inside folders.

``translate`` refuses an output folder where a translation would replace an input, keeps
same-named inputs apart and checks every input before writing; ``evaluate``, ``report`` and
``sweep`` replace only files p2pkit wrote; a split or image name from ``meta.json`` or
``metrics.json`` is a plain name, never a path. The tests share one tiny run, trained once
per session (the ``tiny_run`` fixture).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from p2pkit.cli import cli
from p2pkit.errors import ConfigError, DataError
from p2pkit.evaluation.paths import OUTPUTS_FILE, claim_outputs
from p2pkit.files import plain_name
from p2pkit.inference import output_names


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def run(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the trained run at ``tmp_path/runs/tiny``."""
    monkeypatch.setenv("P2PKIT_CACHE_DIR", str(tmp_path / "cache"))
    return Path(shutil.copytree(tiny_run, tmp_path / "runs" / "tiny"))


def solid(path: Path, rgb: tuple[int, int, int], size: int = 32) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), rgb).save(path)
    return path


def transparent(path: Path) -> Path:
    pixels = np.zeros((32, 32, 4), np.uint8)
    pixels[..., 3] = 100  # real transparency, which the reader refuses
    Image.fromarray(pixels).save(path)
    return path


def evaluate(run: Path, *args: object):
    return invoke("evaluate", run, "--fcn-score", "off", "--no-progress", *args)


def set_meta(run: Path, change) -> Path:
    """Edit the latest checkpoint's meta.json (the tensors' sha256 does not cover it)."""
    step = (run / "checkpoints" / "latest").read_text().strip()
    path = run / "checkpoints" / step / "meta.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))
    return path


# --------------------------------------------------------------------------------- translate


def test_translate_refuses_to_write_over_its_inputs(tiny_run: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    original = solid(inputs / "in1.png", (200, 10, 10)).read_bytes()
    result = invoke("translate", tiny_run, inputs, "--out", inputs)
    assert result.exit_code == 2
    assert "--out" in result.stderr and "in1.png" in result.stderr
    assert (inputs / "in1.png").read_bytes() == original
    assert sorted(p.name for p in inputs.iterdir()) == ["in1.png"]


def test_translate_refuses_an_output_folder_holding_the_input_folders(
    tiny_run: Path, tmp_path: Path
) -> None:
    # Same-named files of two folders go to OUT/train and OUT/val: with OUT the folders'
    # parent, those are the inputs themselves.
    first = solid(tmp_path / "data" / "train" / "1.png", (200, 10, 10)).read_bytes()
    solid(tmp_path / "data" / "val" / "1.png", (10, 10, 200))
    data = tmp_path / "data"
    result = invoke("translate", tiny_run, data / "train", data / "val", "--out", data)
    assert result.exit_code == 2 and "overwrite the input" in result.stderr
    assert (data / "train" / "1.png").read_bytes() == first


def test_translate_keeps_inputs_that_share_a_name_apart(tiny_run: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    solid(photos / "a.png", (200, 10, 10))
    solid(photos / "a.jpg", (10, 10, 200))
    solid(tmp_path / "train" / "1.png", (10, 200, 10))
    solid(tmp_path / "val" / "1.png", (200, 200, 10))
    out = tmp_path / "out"
    result = invoke(
        "translate", tiny_run, photos, tmp_path / "train", tmp_path / "val", "--out", out,
        "--save-triplets",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    outputs = ["a.jpg.png", "a.png.png", "train/1.png", "val/1.png"]
    assert written == sorted(outputs + [f"triplets/{name}" for name in outputs])
    assert (out / "a.jpg.png").read_bytes() != (out / "a.png.png").read_bytes()


def test_output_names_follow_the_documented_rule(tmp_path: Path) -> None:
    files = [
        tmp_path / "p" / "a.jpg",
        tmp_path / "p" / "a.png",
        tmp_path / "p" / "a.jpg.png",  # its name is what a.jpg would get: a.jpg keeps going
        tmp_path / "p" / "b.png",
        tmp_path / "x" / "val" / "1.png",
        tmp_path / "y" / "val" / "1.png",
        tmp_path / "train" / "2.png",
        tmp_path / "val" / "2.png",
    ]
    assert output_names(files) == [
        "a.jpg.png", "a.png.png", "a.jpg.png.png", "b.png", "x/val/1.png", "y/val/1.png",
        "train/2.png", "val/2.png",
    ]  # fmt: skip


def test_output_names_refuse_inputs_that_differ_only_in_case(tmp_path: Path) -> None:
    # Only a case-sensitive file system holds both; macOS and Windows would write one file.
    with pytest.raises(DataError, match="would both be saved as"):
        output_names([tmp_path / "A.png", tmp_path / "a.png"])


def bad_folder(tmp_path: Path) -> Path:
    """1.png is good; 2.png is transparent; 3.png is not an image at all."""
    folder = tmp_path / "mixed"
    solid(folder / "1.png", (200, 10, 10))
    transparent(folder / "2.png")
    (folder / "3.png").write_bytes(b"not a png")
    return folder


def test_translate_lists_every_bad_input_before_writing_anything(
    tiny_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = invoke("translate", tiny_run, bad_folder(tmp_path), "--out", out)
    assert result.exit_code == 2
    assert "2 of 3 input(s) cannot be used" in result.stderr
    assert "2.png: has transparent pixels" in result.stderr and "3.png" in result.stderr
    assert "--skip-bad" in result.stderr
    assert not out.exists()


def test_skip_bad_warns_about_bad_inputs_and_translates_the_rest(
    tiny_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = invoke("translate", tiny_run, bad_folder(tmp_path), "--out", out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "skipping 2 of 3" in result.stderr and "2.png" in result.stderr
    assert "3.png" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["1.png"]


# ----------------------------------------------------------------------- names from metadata


@pytest.mark.parametrize(
    "value", ["../victim", "a/b", "a\\b", "..", ".", "", "/abs", "C:x", None, 3]
)
def test_plain_name_refuses_anything_but_one_name(value: object) -> None:
    with pytest.raises(ConfigError, match=r"meta\.json: recipe data\.val_split = .* single"):
        plain_name(value, "recipe data.val_split", "run/meta.json")
    assert plain_name("val", "recipe data.val_split", "run/meta.json") == "val"


def test_evaluate_refuses_a_split_from_meta_json_that_leaves_the_run_folder(
    run: Path, tmp_path: Path, tiny_data: Path
) -> None:
    # run is tmp_path/runs/tiny, so RUN/eval-<split> resolves to tmp_path/victim_site.
    victim = tmp_path / "victim_site"
    victim.mkdir()
    (victim / "index.html").write_text("the user's site")
    meta = set_meta(run, lambda m: m["recipe"]["data"].update(val_split="../../../../victim_site"))
    result = evaluate(run, "--data", tiny_data / "val")
    assert result.exit_code == 2
    assert "data.val_split" in result.stderr and str(meta) in result.stderr
    assert (victim / "index.html").read_text() == "the user's site"
    assert sorted(p.name for p in victim.iterdir()) == ["index.html"]


def test_evaluate_refuses_a_split_option_that_leaves_the_run_folder(
    run: Path, tiny_data: Path
) -> None:
    # RUN/eval-../../../elsewhere resolves to RUN/../elsewhere.
    result = evaluate(run, "--data", tiny_data / "val", "--split", "../../../elsewhere")
    assert result.exit_code == 2 and "--split" in result.stderr
    assert not (run.parent / "elsewhere").exists()


def test_report_refuses_an_image_name_from_metrics_json_that_leaves_the_folder(
    run: Path, tmp_path: Path
) -> None:
    assert evaluate(run).exit_code == 0
    for kind in ("input", "output", "target"):
        solid(tmp_path / f"secret_{kind}.png", (1, 2, 3))
    metrics = run / "eval-val" / "metrics.json"
    result = json.loads(metrics.read_text())
    # From eval-val/images, ../../../../secret is tmp_path/secret.
    result["per_image"][0]["name"] = "../../../../secret"
    metrics.write_text(json.dumps(result))
    page = (run / "eval-val" / "index.html").read_text()
    outcome = invoke("report", run)
    assert outcome.exit_code == 2
    assert "per_image[0].name" in outcome.stderr and "metrics.json" in outcome.stderr
    assert (run / "eval-val" / "index.html").read_text() == page
    assert not (run / "eval-val" / "thumbs").exists()


# ------------------------------------------------------------------- the user's files survive


def test_evaluate_never_replaces_a_users_file_in_out(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("the user's page")
    (out / "notes.txt").write_text("the user's notes")
    result = evaluate(run, "--out", out)
    assert result.exit_code == 2
    assert "index.html" in result.stderr and "did not write" in result.stderr
    assert (out / "index.html").read_text() == "the user's page"
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "notes.txt"]


def test_evaluating_again_replaces_only_its_own_results(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores"
    assert evaluate(run, "--out", out).exit_code == 0
    (out / "notes.txt").write_text("the user's notes")
    (out / "images" / "mine.png").write_bytes(b"the user's picture")
    result = evaluate(run, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "the user's notes"
    assert (out / "images" / "mine.png").read_bytes() == b"the user's picture"
    assert (out / "metrics.json").is_file()


def test_report_keeps_a_users_page_in_the_report_folder(run: Path) -> None:
    (run / "report").mkdir()
    (run / "report" / "index.html").write_text("the user's write-up")
    result = invoke("report", run)
    assert result.exit_code == 2 and "index.html" in result.stderr
    assert (run / "report" / "index.html").read_text() == "the user's write-up"


def test_report_rewrites_evaluations_written_before_outputs_were_listed(run: Path) -> None:
    assert evaluate(run).exit_code == 0
    (run / "eval-val" / OUTPUTS_FILE).unlink(missing_ok=True)  # as an older p2pkit left it
    (run / "eval-val" / "notes.txt").write_text("the user's notes")
    result = invoke("report", run)
    assert result.exit_code == 0, result.output
    assert (run / "eval-val" / "notes.txt").read_text() == "the user's notes"


def test_claim_outputs_refuses_a_symbolic_link_out_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "images").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DataError, match="symbolic link"):
        claim_outputs(tmp_path / "out", ["images/1_output.png"], option="--out")


def users_table(out: Path) -> None:
    (out / "comparison.md").write_text("the user's table")


def users_folder(out: Path) -> None:
    # "l1" is the folder the variant objective.name=l1 trains in.
    (out / "l1").mkdir()
    (out / "l1" / "notes.txt").write_text("the user's notes")


@pytest.mark.parametrize(
    ("prepare", "args", "message"),
    [
        (users_table, [], "comparison.md"),
        (users_folder, [], "no recipe.toml"),
        (None, ["--table", "../escaped"], "--table"),
    ],
    ids=["users-table", "users-folder-named-like-a-variant", "table-outside-out"],
)
def test_sweep_checks_its_out_folder_before_training(
    tiny_recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prepare, args, message
) -> None:
    monkeypatch.setenv("P2PKIT_CACHE_DIR", str(tmp_path / "cache"))
    recipe = tiny_recipe
    out = tmp_path / "sweep"
    out.mkdir()
    if prepare is not None:
        prepare(out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = invoke(
        "sweep", recipe, "--vary", "objective.name=l1", "--set", "train.max_iterations=1",
        "--out", out, "--fcn-score", "off", "--no-progress", *args,
    )  # fmt: skip
    assert result.exit_code == 2 and message in result.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "escaped.md").exists()
