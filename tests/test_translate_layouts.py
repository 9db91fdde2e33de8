"""``p2pkit translate`` reads its inputs through a registered dataset layout: the run's own by
default, ``--layout NAME`` for another, a layout registered in-process (as a plugin's would be)
included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from p2pkit.cli import cli
from p2pkit.data.base import ImageDataset, list_folder, resolve_folder
from p2pkit.data.images import to_float
from p2pkit.data.options import DatasetOptions, reads_files
from p2pkit.registry import create_dataset
from p2pkit.testing import check_dataset


def invoke(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _halves(path: Path, swap: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A above B in one file: the top half is A, the bottom half B (uint8, CHW)."""
    pixels = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)
    middle = pixels.shape[1] // 2
    top, bottom = pixels[:, :middle], pixels[:, middle:]
    return (bottom, top) if swap else (top, bottom)


def read_stacked(path: Path, options: DatasetOptions) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _halves(path, options.swap)
    return to_float(a, 255), to_float(b, 255)


@reads_files(read_stacked)
def stacked(options: DatasetOptions) -> ImageDataset:
    """A layout of files holding A above B, as a plugin might provide."""
    folder = resolve_folder(options.root, options.split)
    paths = list_folder(folder)[: options.max_images]
    sides = [_halves(path, options.swap) for path in paths]
    a = torch.stack([side[0] for side in sides])
    b = torch.stack([side[1] for side in sides])
    return ImageDataset(folder, a, b, paths, 255)


def without_reader(options: DatasetOptions) -> ImageDataset:
    """A layout that can load a folder but not read a file on its own."""
    raise AssertionError("translate must not load a whole dataset")


def stack_vertically(aligned_file: Path, target: Path) -> Path:
    """The A|B file rewritten as A above B."""
    pixels = np.asarray(Image.open(aligned_file).convert("RGB"))
    middle = pixels.shape[1] // 2
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([pixels[:, :middle], pixels[:, middle:]], axis=0)).save(target)
    return target


def test_a_layout_registered_in_process_reads_the_inputs_of_translate(
    p2pkit_registry, tiny_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    p2pkit_registry["datasets"].register("stacked")(stacked)
    source = tiny_data / "val" / "1.png"
    stack_vertically(source, tmp_path / "stacked" / "1.png")
    out = tmp_path / "out"
    result = invoke(
        "translate", tiny_run, tmp_path / "stacked", "--layout", "stacked", "--out", out / "new",
        "--save-triplets",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke(
        "translate",
        tiny_run,
        source,
        "--layout",
        "aligned",
        "--out",
        out / "ref",
        "--save-triplets",
    )
    assert result.exit_code == 0, result.output
    # The same pixels, stored two ways: the same input half (the run's BtoA), the same output.
    assert (out / "new" / "1.png").read_bytes() == (out / "ref" / "1.png").read_bytes()
    strip = Image.open(out / "new" / "triplets" / "1.png")
    assert strip.size == Image.open(out / "ref" / "triplets" / "1.png").size
    assert strip.size[0] > 3 * 32  # input | output | target: the layout gave the target


def test_translate_reads_each_file_as_one_image_by_default(
    tiny_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    for name, extra in (("default", ()), ("single", ("--layout", "single"))):
        result = invoke("translate", tiny_run, tiny_data / "val", "--out", tmp_path / name, *extra)
        assert result.exit_code == 0, result.output
    default = tmp_path / "default" / "1.png"
    assert default.read_bytes() == (tmp_path / "single" / "1.png").read_bytes()
    # The whole 64x32 A|B file was the input, not one half of it.
    assert Image.open(default).size == (64, 32)


def test_a_layout_that_cannot_read_files_is_one_line(
    p2pkit_registry, tiny_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    p2pkit_registry["datasets"].register("folders_only")(without_reader)
    out = tmp_path / "out"
    result = invoke(
        "translate", tiny_run, tiny_data / "val", "--layout", "folders_only", "--out", out
    )
    assert result.exit_code == 2
    assert "dataset layout 'folders_only' cannot read single files" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    result = invoke("translate", tiny_run, tiny_data / "val", "--layout", "stackd", "--out", out)
    assert result.exit_code == 2 and "unknown dataset 'stackd'" in result.stderr


def test_check_dataset_checks_the_layouts_read_file(
    p2pkit_registry, tiny_data: Path, tmp_path: Path
) -> None:
    for i in (1, 2):
        stack_vertically(tiny_data / "train" / f"{i}.png", tmp_path / "train" / f"{i}.png")
    p2pkit_registry["datasets"].register("stacked")(stacked)
    check_dataset(create_dataset("stacked", root=tmp_path, direction="BtoA"))

    def upside_down(path: Path, options: DatasetOptions) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = read_stacked(path, options)
        return b, a

    def broken(options: DatasetOptions) -> ImageDataset:
        return stacked(options)

    broken.read_file = upside_down  # type: ignore[attr-defined]
    p2pkit_registry["datasets"].register("broken")(broken)
    with pytest.raises(AssertionError, match="read_file side a of .* differs from the dataset"):
        check_dataset(create_dataset("broken", root=tmp_path))


def test_a_layout_taking_the_old_keywords_is_told_to_take_options(
    p2pkit_registry, tiny_data: Path
) -> None:
    from p2pkit.config import DataConfig
    from p2pkit.engine.build import build_dataset
    from p2pkit.errors import RegistryError
    from p2pkit.registry import create_task

    def old_style(root: str, *, split: str = "train", direction: str = "AtoB") -> ImageDataset:
        raise AssertionError("never called")

    p2pkit_registry["datasets"].register("old_style")(old_style)
    data = DataConfig(dataset="old_style", root=str(tiny_data))
    with pytest.raises(RegistryError, match="'old_style' does not take options.*DatasetOptions"):
        build_dataset(data, create_task("translation"), "train")
