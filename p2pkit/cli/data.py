"""``p2pkit data download | get | combine | synth | edges``."""

from __future__ import annotations

from pathlib import Path

import click

# For the list of dataset names; p2pkit.data.download does not import torch, so help stays fast.
from p2pkit.data.download import DATA_HOME_ENV, DATASETS


@click.group("data")
def data_group() -> None:
    """Download, generate and prepare datasets."""


@data_group.command(
    "download",
    epilog=(
        "Examples:\n\n"
        "  p2pkit data download maps\n\n"
        "  p2pkit data download facades --to /scratch/datasets --sha256 <hex>\n\n"
        f"Datasets: {', '.join(DATASETS)}."
    ),
)
@click.argument("name")
@click.option(
    "--to",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Folder to download and unpack into. Default: the data home, ${DATA_HOME_ENV} if set, "
    "else ./data, where recipes find the dataset without --data-root.",
)
@click.option("--url", help="Download from this URL instead (a mirror).")
@click.option("--sha256", help="Expected SHA-256 of the archive; a mismatch is an error.")
@click.option("--no-extract", is_flag=True, help="Keep the archive, do not unpack it.")
@click.option("--timeout", default=30.0, show_default=True, help="Network timeout in seconds.")
def download_command(
    name: str,
    dest: Path | None,
    url: str | None,
    sha256: str | None,
    no_extract: bool,
    timeout: float,
) -> None:
    """Download an official pix2pix dataset NAME (resumable, checked, safely unpacked)."""
    from p2pkit.data.download import data_home, download
    from p2pkit.errors import DataError
    from p2pkit.registry import get_registry

    if name not in DATASETS and "://" not in name and name in get_registry("sources"):
        raise DataError(
            f"{name} is a data source with no archive of its own here; get it with "
            f"`p2pkit data get {name}`"
        )
    if dest is None:
        dest = data_home()
    path = download(
        name, dest, url=url, sha256=sha256, extract=not no_extract, timeout=timeout, progress=True
    )
    click.echo(f"{name}: ready in {path}")


@data_group.command(
    "get",
    epilog=(
        "Examples:\n\n"
        "  p2pkit data get synth --size 64\n\n"
        "  p2pkit data get facades --to /scratch/datasets\n\n"
        "Sources: p2pkit list sources."
    ),
)
@click.argument("name")
@click.option(
    "--to",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Folder that receives the dataset as DIR/NAME. Default: the data home, ${DATA_HOME_ENV} "
    "if set, else ./data, where a recipe whose data.source is NAME finds it.",
)
@click.option(
    "--size",
    type=click.IntRange(16),
    help="Image size for a source that generates its images (synth: the side of each half; "
    "default: the source's own, 128 for synth). Downloads ignore it.",
)
def get_command(name: str, dest: Path | None, size: int | None) -> None:
    """Provide the dataset of the registered data source NAME (download or generate it)."""
    from p2pkit.data.download import data_home
    from p2pkit.data.sources import find_source, short_name
    from p2pkit.errors import RegistryError
    from p2pkit.registry import get_registry

    source = find_source(name)
    if source is None:
        # The registry's message lists the known sources, with close matches.
        get_registry("sources").get(name)
        raise RegistryError(f"unknown data source '{name}'")  # pragma: no cover
    folder = (data_home() if dest is None else dest) / short_name(name)
    path = source.provide(folder, size=size, progress=True)
    click.echo(f"{name}: ready in {path}")


@data_group.command(
    "combine",
    epilog=(
        "Example: p2pkit data combine llvip/train/A llvip/train/B data/llvip-aligned/train "
        "--resize 256"
    ),
)
@click.argument("a_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("b_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--resize", type=click.IntRange(1), help="Resize both sides to SIZE x SIZE.")
def combine_command(a_dir: Path, b_dir: Path, out_dir: Path, resize: int | None) -> None:
    """Pair same-named images of A_DIR and B_DIR into aligned A|B images in OUT_DIR."""
    from p2pkit.data.combine import combine

    n = combine(a_dir, b_dir, out_dir, resize_to=resize, progress=True)
    click.echo(f"wrote {n} aligned image(s) to {out_dir}")


@data_group.command(
    "synth",
    epilog="Example: p2pkit data synth data/synth-facades --size 128 --n-train 400",
)
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n-train", default=400, show_default=True, type=click.IntRange(1))
@click.option("--n-val", default=50, show_default=True, type=click.IntRange(0))
@click.option("--size", default=128, show_default=True, type=click.IntRange(16))
@click.option("--seed", default=0, show_default=True)
def synth_command(out_dir: Path, n_train: int, n_val: int, size: int, seed: int) -> None:
    """Generate the offline toy dataset: facade-like label maps and pseudo-photos.

    The layout is that of the pix2pix facades set (photo A | labels B, so
    labels -> photo is BtoA) and generation is deterministic from the seed.
    """
    from p2pkit.data.synth import synthesize_facades

    path = synthesize_facades(out_dir, n_train=n_train, n_val=n_val, size=size, seed=seed)
    click.echo(f"synthetic facades written to {path}")


@data_group.command(
    "edges",
    epilog="Example: p2pkit data edges photos/ data/edges2photos/train --size 256",
)
@click.argument("photo_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--size", default=256, show_default=True, type=click.IntRange(16))
@click.option("--sigma", default=1.5, show_default=True, help="Canny smoothing.")
def edges_command(photo_dir: Path, out_dir: Path, size: int, sigma: float) -> None:
    """Make an aligned edges|photo dataset from PHOTO_DIR with kornia's Canny detector."""
    from p2pkit.data.edges import edges_dataset

    n = edges_dataset(photo_dir, out_dir, size=size, sigma=sigma)
    click.echo(f"wrote {n} edges|photo pair(s) to {out_dir}")
