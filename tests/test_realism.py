"""The realism judge (a classifier two-sample test) passes the checks a real-vs-fake test must.

Synthetic facades stand in for photos: structured images with edges, textures and flat regions,
not noise. The judge runs at a small size (48 px images, 32 px crops, a few dozen steps per
fold), so each check takes seconds; its verdicts are exact for a seed, so none is flaky.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import kornia
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from p2pkit.cli import cli
from p2pkit.data.synth import labels_to_rgb, render_facade
from p2pkit.evaluation.realism import (
    C2ST,
    binomial_p_value,
    c2st,
    realism_cache_path,
    wilson_interval,
)
from p2pkit.registry import get_registry

SIZE = 48
N = 24
# Small and quick: 3 folds of 60 steps on 32 px crops.
FAST = {"steps": 60, "crop_size": 32, "folds": 3, "seed": 0, "batch_size": 32, "test_crops": 4}


def _facades(seed: int, n: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` synthetic facade photos and their label maps, float (n, 3, SIZE, SIZE) in [-1, 1]."""
    photos, labels = [], []
    for index in range(n):
        photo, label = render_facade(seed, index, size=SIZE)
        photos.append(torch.from_numpy(photo).permute(2, 0, 1))
        labels.append(torch.from_numpy(np.ascontiguousarray(labels_to_rgb(label))).permute(2, 0, 1))
    return torch.stack(photos).float() / 127.5 - 1, torch.stack(labels).float() / 127.5 - 1


@pytest.fixture(scope="module")
def facades() -> tuple[torch.Tensor, torch.Tensor]:
    return _facades(seed=0)


def judge(real: torch.Tensor, fake: torch.Tensor, inputs: torch.Tensor | None = None) -> dict:
    return c2st(**FAST)(real, fake, inputs)


def test_real_against_real_is_indistinguishable(facades) -> None:
    # Two independent draws of the same kind of image: chance lies inside the interval.
    verdict = judge(facades[0], _facades(seed=1)[0])
    low, high = verdict["accuracy_ci"]
    assert low <= 0.5 <= high, verdict
    assert verdict["p_value"] > 0.05
    assert verdict["decisions"] == 2 * N and verdict["images"] == N


def test_a_blurred_copy_is_caught_almost_always(facades) -> None:
    real = facades[0]
    blurred = kornia.filters.gaussian_blur2d(real, (7, 7), (1.5, 1.5))
    verdict = judge(real, blurred)
    assert verdict["accuracy"] >= 0.9, verdict
    assert verdict["accuracy_ci"][0] > 0.75
    assert verdict["generated_labelled_real"] <= 0.15
    assert verdict["p_value"] < 1e-6


def test_a_colour_shift_is_caught_clearly_above_chance(facades) -> None:
    real = facades[0]
    shifted = (real + torch.tensor([0.12, 0.0, -0.12]).view(1, 3, 1, 1)).clamp(-1, 1)
    verdict = judge(real, shifted)
    assert verdict["accuracy_ci"][0] > 0.5, verdict
    assert verdict["generated_labelled_real"] < 0.5


def test_the_same_seed_gives_the_same_verdict_and_leaves_the_global_rng_alone(facades) -> None:
    real = facades[0]
    blurred = kornia.filters.gaussian_blur2d(real, (5, 5), (0.7, 0.7))
    first, again = judge(real, blurred), judge(real, blurred)
    assert first == again
    # The global random state is the caller's: the judge neither reads nor moves it.
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    judge(real, blurred)
    assert torch.equal(torch.rand(1), expected)


def test_the_conditional_judge_catches_real_looking_outputs_that_ignore_their_input(
    facades,
) -> None:
    photos, labels = facades
    # Each "output" is a real photo, of another facade than its input label map shows.
    mismatched = photos.roll(1, dims=0)
    alone = judge(photos, mismatched)
    paired = c2st(**{**FAST, "steps": 150})(photos, mismatched, labels)
    assert alone["accuracy_ci"][0] <= 0.5, alone  # every output is a real photo
    assert paired["accuracy"] >= 0.75, paired
    assert paired["accuracy_ci"][0] > 0.5


def test_statistics() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    low, high = wilson_interval(100, 100)
    assert high == 1.0 and 0.96 < low < 0.97
    assert binomial_p_value(100, 200) == pytest.approx(0.5282, abs=1e-3)
    assert binomial_p_value(0, 10) == 1.0
    assert binomial_p_value(10, 10) == pytest.approx(2**-10)


def test_bad_input_is_one_plain_error(facades) -> None:
    from p2pkit.errors import DataError, OptionValueError

    real = facades[0]
    with pytest.raises(DataError, match="at least 2 images"):
        judge(real[:1], real[:1])
    with pytest.raises(DataError, match="one shape"):
        judge(real, real[:, :, :32])
    with pytest.raises(OptionValueError, match="folds"):
        get_registry("judges").create("c2st", folds=1)


def test_c2st_is_a_registered_judge_and_the_cache_key_follows_images_and_settings(
    facades,
) -> None:
    built = get_registry("judges").create("c2st", steps=5)
    assert isinstance(built, C2ST) and built.settings["steps"] == 5
    real = facades[0]
    key = realism_cache_path("c2st", built.settings, [real, real, None], cache_dir="/c")
    assert key == realism_cache_path("c2st", built.settings, [real, real, None], cache_dir="/c")
    other = dict(built.settings, seed=1)
    assert key != realism_cache_path("c2st", other, [real, real, None], cache_dir="/c")
    assert key != realism_cache_path("c2st", built.settings, [real, real, real], cache_dir="/c")
    assert key != realism_cache_path("c2st", built.settings, [real, -real, None], cache_dir="/c")


def test_evaluate_records_realism_and_sharpness_and_reuses_the_verdict(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2PKIT_CACHE_DIR", str(tmp_path / "cache"))
    run = Path(shutil.copytree(tiny_run, tmp_path / "tiny"))
    args = ["evaluate", str(run), "--fcn-score", "off", "--no-progress", "--realism", "both"]
    args += ["--judge-option", "steps=4", "--judge-option", "seed=3"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "eval-val" / "metrics.json").read_text())
    realism = metrics["realism"]
    assert realism["judge"] == "c2st"
    assert realism["settings"]["steps"] == 4 and realism["settings"]["seed"] == 3
    for variant in ("unconditional", "conditional"):
        assert set(realism[variant]) >= {"accuracy", "accuracy_ci", "generated_labelled_real"}
    assert "sharpness" in metrics["aggregate"] and "sharpness" in metrics["per_image"][0]
    page = (run / "eval-val" / "index.html").read_text()
    assert "<tr><th>sharpness</th><td>closer to 1 is better</td>" in page
    assert "<tr><th>realism accuracy</th><td>lower is better</td>" in page
    assert "component c2st; steps 4;" in page and "seed 3" in page
    assert "conditional ((input, output) pairs)" in page
    cached = list((tmp_path / "cache" / "judges").glob("c2st-*.json"))
    assert len(cached) == 2
    # The same outputs judged again come from the cache, with the same verdict.
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0 and "reusing the verdict" in result.output
    again = json.loads((run / "eval-val" / "metrics.json").read_text())["realism"]
    assert again["unconditional"] == realism["unconditional"]


def test_realism_off_and_a_bad_judge_option(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2PKIT_CACHE_DIR", str(tmp_path / "cache"))
    run = Path(shutil.copytree(tiny_run, tmp_path / "tiny"))
    base = ["evaluate", str(run), "--fcn-score", "off", "--no-progress"]
    result = CliRunner().invoke(cli, [*base, "--realism", "off"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "realism" not in json.loads((run / "eval-val" / "metrics.json").read_text())
    result = CliRunner().invoke(cli, [*base, "--judge-option", "stepz=4"])
    assert result.exit_code == 2 and "no option 'stepz'" in result.output


def test_the_sweep_table_shows_realism_with_its_interval_and_names_the_judge() -> None:
    from p2pkit.evaluation.sweep import comparison_markdown

    judge_spec = {"name": "c2st", "settings": {"steps": 150, "seed": 0}}
    row = {"label": "L1", "train_seconds": 60.0, "l1": 0.3, "psnr": 14.0, "ssim": 0.3}
    row |= {"hist_L": 0.9, "hist_a": 0.8, "hist_b": 0.7, "sharpness": 0.41, "judge": judge_spec}
    row |= {"realism_acc": 0.97, "realism_ci": [0.94, 0.99], "labelled_real": 0.03}
    comparison = {"recipe": "facades", "varies": ["objective.name=l1"], "split": "val"}
    text = comparison_markdown({**comparison, "rows": [row], "ground_truth": None})
    assert "| Real/fake acc. [95% CI] | % labelled real |" in text and "| Sharpness |" in text
    assert "| L1 | 0.970 [0.94, 0.99] | 3.0% |" in text and "| 0.410 |" in text
    assert "Realism judge: `c2st` (seed 0, steps 150)" in text
