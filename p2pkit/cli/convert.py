"""``p2pkit import authors CHECKPOINT.pth``: a generator saved by other code as a p2pkit run."""

from __future__ import annotations

import re
from pathlib import Path

import click

from p2pkit.cli.common import console
from p2pkit.convert.authors import NETWORKS, NORMS

# Their checkpoint names: latest_net_G.pth, 200_net_G.pth; the run is then named after the
# folder that holds it (checkpoints/facades_label2photo_pretrained/latest_net_G.pth).
_THEIR_FILE_NAME = re.compile(r"^(latest|\d+)_net_G(_[AB])?$")


def default_run_dir(checkpoint: Path) -> Path:
    """``runs/NAME`` (``runs/NAME-2``... when taken) for a file of theirs.

    NAME is the folder holding the file when the file has their generic name
    (``latest_net_G.pth``), else the file's name without its extension.
    """
    from p2pkit.engine.runs import next_run_dir

    name = checkpoint.stem
    parent = checkpoint.resolve().parent.name
    if _THEIR_FILE_NAME.match(name) and parent:
        name = parent
    name = re.sub(r"[^\w.-]+", "-", name).strip(".-") or "imported"
    return next_run_dir(Path("runs"), name)


@click.group("import")
def import_group() -> None:
    """Bring generators trained by other code into p2pkit run folders."""


@import_group.command(
    "authors",
    epilog=(
        "Examples:\n\n"
        "  p2pkit import authors checkpoints/facades_label2photo_pretrained/latest_net_G.pth "
        "--direction BtoA --out runs/facades-authors\n\n"
        "  p2pkit import authors latest_net_G.pth --netG resnet_9blocks --norm instance "
        "--no-dropout"
    ),
)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--netG",
    "netg",
    type=click.Choice(NETWORKS),
    default="unet_256",
    show_default=True,
    help="The generator the file holds (their --netG). The ResNet generators need the "
    "p2pkit-resnet plugin.",
)
@click.option(
    "--norm",
    type=click.Choice(NORMS),
    default="batch",
    show_default=True,
    help="Its normalisation (their --norm).",
)
@click.option(
    "--no-dropout",
    is_flag=True,
    help="It was trained without dropout (their --no_dropout). Changes a ResNet's keys, and "
    "a U-Net's output under --paper-protocol.",
)
@click.option(
    "--direction",
    type=click.Choice(["AtoB", "BtoA"]),
    default="AtoB",
    show_default=True,
    help="Which half of an aligned A|B image is the input (their --direction).",
)
@click.option(
    "--task",
    default="translation",
    show_default=True,
    help="The p2pkit task that makes the generator's inputs (`p2pkit list tasks`).",
)
@click.option(
    "--input-nc",
    type=click.IntRange(1, 64),
    help="Input channels (their --input_nc; default: the task's, 3 for translation).",
)
@click.option(
    "--output-nc",
    type=click.IntRange(1, 64),
    help="Output channels (their --output_nc; default: the task's, 3 for translation).",
)
@click.option(
    "--ngf",
    type=click.IntRange(1, 256),
    default=64,
    show_default=True,
    help="Filters of the first convolution (their --ngf).",
)
@click.option(
    "--crop-size",
    type=click.IntRange(1, 16384),
    help="Image size recorded in the recipe, to which evaluate resizes (default: 128 for "
    "unet_128, else 256).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="The run folder to create; it must not exist or be empty. Default: runs/NAME, "
    "NAME being the folder holding latest_net_G.pth (or the file's name).",
)
def authors_command(
    checkpoint: Path,
    netg: str,
    norm: str,
    no_dropout: bool,
    direction: str,
    task: str,
    input_nc: int | None,
    output_nc: int | None,
    ngf: int,
    crop_size: int | None,
    out: Path | None,
) -> None:
    """Convert a generator saved by the authors' pytorch-CycleGAN-and-pix2pix code.

    CHECKPOINT is their .pth file (latest_net_G.pth, or a published model such as
    facades_label2photo's), read with torch.load(weights_only=True). The file does not say
    how the network was built: give the options it was trained with. Every tensor is
    checked first; a file that does not fit stops with the first key that differs, and
    nothing is written. The run folder holds only the generator, which translate and
    evaluate read like any run's.
    """
    from p2pkit.convert.authors import AuthorsNetwork, import_authors, task_config

    _, in_ch, out_ch = task_config(task, input_nc, output_nc)
    network = AuthorsNetwork(
        netG=netg,
        norm=norm,
        dropout=not no_dropout,
        input_nc=in_ch,
        output_nc=out_ch,
        ngf=ngf,
    )
    run_dir = out if out is not None else default_run_dir(checkpoint)
    import_authors(
        checkpoint, run_dir, network, direction=direction, task=task, crop_size=crop_size
    )
    console().print(f"imported {checkpoint} as {run_dir}: {network.describe()}, {direction}")
    console().print(f"translate with: p2pkit translate {run_dir} INPUT... --out DIR")
