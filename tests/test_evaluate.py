"""`p2pkit evaluate`, `report` and `sweep` end to end on a tiny synthetic task."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2pkit.cli import cli


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture
def trained_run(tiny_recipe, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("P2PKIT_CACHE_DIR", str(tmp_path / "cache"))
    result = invoke("train", "--config", tiny_recipe, "--out", tmp_path / "runs", "--no-progress")
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / "tiny"


def referenced_files(html: Path) -> list[str]:
    text = html.read_text()
    return re.findall(r'(?:src|href)="([^"#]+)"', text)


def test_evaluate_writes_metrics_fcn_scores_and_a_self_contained_page(trained_run):
    result = invoke(
        "evaluate", trained_run, "--fcn-score", "on", "--segmenter-steps", 20, "--no-progress"
    )
    assert result.exit_code == 0, result.output
    out = trained_run / "eval-val"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 2 and len(metrics["per_image"]) == 2
    assert {"l1", "psnr", "ssim"} <= set(metrics["aggregate"])
    assert set(metrics["color_histogram_intersection"]) == {"L", "a", "b"}
    fcn = metrics["fcn_scores"]
    assert set(fcn["generated"]) >= {"per_pixel_acc", "per_class_acc", "class_iou"}
    assert 0 <= fcn["ground_truth"]["per_pixel_acc"] <= 1
    assert metrics["checkpoint_sha256"] and metrics["p2pkit_version"]
    assert metrics["recipe"]["name"] == "tiny"
    page = out / "index.html"
    refs = referenced_files(page)
    assert refs, "the page shows images"
    for ref in refs:
        assert not ref.startswith(("http:", "https:", "//", "/")), ref
        assert (page.parent / ref).is_file(), ref


def test_paper_protocol_samples_report_their_spread(trained_run):
    result = invoke(
        "evaluate", trained_run, "--paper-protocol", "--samples", 3, "--fcn-score", "off",
        "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((trained_run / "eval-val" / "metrics.json").read_text())
    assert metrics["protocol"] == "paper"
    assert metrics["sample_spread"]["mean_pixel_std"] > 0


def test_several_samples_without_the_paper_protocol_is_a_user_error(trained_run):
    result = CliRunner().invoke(cli, ["evaluate", str(trained_run), "--samples", "2"])
    assert result.exit_code == 2
    assert "--paper-protocol" in result.stderr


def test_evaluate_scores_the_recipes_val_split_by_default(tiny_recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("P2PKIT_CACHE_DIR", str(tmp_path / "cache"))
    text = tiny_recipe.read_text().replace(
        'dataset = "aligned"', 'dataset = "aligned"\nval_split = "train"'
    )
    tiny_recipe.write_text(text)
    result = invoke("train", "--config", tiny_recipe, "--out", tmp_path / "runs", "--no-progress")
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "tiny"
    result = invoke("evaluate", run, "--fcn-score", "off", "--no-progress")
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "eval-train" / "metrics.json").read_text())
    assert metrics["split"] == "train" and metrics["images"] == 8
    assert "eval-train" in result.output


def test_report_rewrites_the_pages_of_a_run(trained_run):
    result = invoke("report", trained_run)
    assert result.exit_code == 0
    page = trained_run / "report" / "index.html"
    assert page.is_file()
    for ref in referenced_files(page):
        assert (page.parent / ref).is_file(), ref
    invoke("evaluate", trained_run, "--fcn-score", "off", "--no-progress")
    result = invoke("report", trained_run)
    assert "eval-val" in result.output


def test_sweep_writes_one_row_per_variant(tiny_recipe, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("P2PKIT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "sweep"
    result = invoke(
        "sweep", tiny_recipe, "--vary", "objective.name=l1,l1_cgan", "--out", out,
        "--fcn-score", "on", "--segmenter-steps", 10, "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = json.loads((out / "comparison.json").read_text())
    assert [r["label"] for r in table["rows"]] == ["L1", "L1+cGAN"]
    assert table["ground_truth"]["per_pixel_acc"] > 0
    markdown = (out / "comparison.md").read_text()
    assert "| L1 |" in markdown and "| L1+cGAN |" in markdown and "| Ground truth |" in markdown
    # The segmenter's control: the real photos blurred, scored by the same segmenter.
    assert "| Ground truth, blurred |" in markdown
    assert set(table["ground_truth_blurred"]) == set(table["ground_truth"])
    # A later sweep sharing a variant reuses the finished run instead of training it again.
    result = invoke(
        "sweep", tiny_recipe, "--vary", "discriminator.name=patchgan_16", "--out", out,
        "--table", "again", "--fcn-score", "off", "--no-progress",
    )  # fmt: skip
    assert "reusing the finished run" in result.output


def test_fid_with_a_missing_weights_file_fails_before_translating(trained_run, tmp_path):
    missing = tmp_path / "inception.pth"
    result = CliRunner().invoke(
        cli, ["evaluate", str(trained_run), "--fid-weights", str(missing), "--no-progress"]
    )
    assert result.exit_code == 2
    assert str(missing) in result.stderr
    assert not (trained_run / "eval-val" / "metrics.json").exists()


def test_fid_and_kid_from_a_local_weights_file(trained_run, tmp_path):
    torchvision = pytest.importorskip("torchvision")
    import torch

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    weights = tmp_path / "inception.pth"
    torch.save(net.state_dict(), weights)
    result = invoke(
        "evaluate", trained_run, "--fid-weights", weights, "--fcn-score", "off", "--no-progress"
    )
    assert result.exit_code == 0, result.output
    fid = json.loads((trained_run / "eval-val" / "metrics.json").read_text())["fid"]
    assert fid["n"] == 2 and fid["fid"] >= 0 and "kid_mean" in fid


def test_an_unknown_segmenter_is_a_one_line_error_naming_it(trained_run):
    result = CliRunner().invoke(
        cli, ["evaluate", str(trained_run), "--fcn-score", "on", "--segmenter", "nope"]
    )
    assert result.exit_code == 2, result.output
    assert "nope" in result.stderr and "fcn_small" in result.stderr


def test_evaluate_scores_a_plugin_metric_named_on_the_command_line(
    tmp_path, tiny_data, p2pkit_registry
):
    import json
    import shutil

    import p2pkit

    @p2pkit.register_metric("mean_abs_output")
    def mean_abs_output(fake, real):
        return fake.abs().mean(dim=(1, 2, 3))

    run = tmp_path / "run"
    shutil.copytree(Path(__file__).parent / "data" / "run-format-1", run)
    result = invoke(
        "evaluate", run, "--data", tiny_data, "--metrics", "l1,mean_abs_output",
        "--fcn-score", "off", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "eval-val" / "metrics.json").read_text())
    assert set(metrics["aggregate"]) == {"l1", "mean_abs_output"}
    bad = invoke("evaluate", run, "--data", tiny_data, "--metrics", "l1,nope")
    assert bad.exit_code == 2 and "unknown metric 'nope'; registered:" in bad.output


def test_sweep_says_which_data_folder_it_found_in_the_data_home(tiny_data, tmp_path, monkeypatch):
    import shutil

    from tests.conftest import TINY_RECIPE

    home = tmp_path / "home"
    shutil.copytree(tiny_data, home / "tinyset")
    monkeypatch.setenv("P2PKIT_DATA", str(home))
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(
        TINY_RECIPE.replace('dataset = "aligned"', 'dataset = "aligned"\nsource = "tinyset"')
    )
    result = invoke(
        "sweep", recipe, "--vary", "objective.name=l1", "--out", tmp_path / "sweep",
        "--set", "train.max_iterations=1", "--fcn-score", "off", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"data: {home / 'tinyset'} (the data home" in result.output


def test_the_fcn_control_blurs_the_real_photos_by_a_sixty_fourth_of_their_side():
    import torch

    from p2pkit.evaluation.evaluate import blur_control, blur_sigma
    from p2pkit.evaluation.metrics import laplacian_energy

    assert blur_sigma(128) == 2 and blur_sigma(256) == 4
    photos = torch.rand(2, 3, 64, 64) * 2 - 1
    blurred = blur_control(photos)
    assert blurred.shape == photos.shape
    assert blurred.min() >= -1 and blurred.max() <= 1
    assert (laplacian_energy(blurred) < 0.2 * laplacian_energy(photos)).all()


def test_a_segmenter_crop_larger_than_the_images_is_one_plain_error(trained_run, tmp_path):
    """--segmenter-crop above the run's image size fails before any work, naming the option."""
    result = invoke(
        "evaluate", trained_run, "--fcn-score", "on", "--segmenter-crop", 1000,
        "--no-progress", "--out", tmp_path / "crop",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    line = result.output.strip().splitlines()[-1]
    assert "--segmenter-crop 1000 is larger than the" in line and "0 for whole images" in line
    assert not (tmp_path / "crop" / "metrics.json").exists()
