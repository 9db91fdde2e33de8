"""Helpers shared by the command modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console


def console() -> Console:
    """Console for normal output (stdout).

    Lines are never broken at the console's width: a log file (where rich assumes
    80 columns) keeps one message per line.
    """
    return Console(highlight=False, soft_wrap=True)


def error_console() -> Console:
    """Console for warnings and progress that must not mix with data on stdout."""
    return Console(stderr=True, highlight=False)


def precision_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--precision fp32|bf16|fp16``, shared by ``translate`` and ``serve``."""
    import click

    from p2pkit.config import PRECISIONS

    return click.option(
        "--precision",
        type=click.Choice([p for p in PRECISIONS if p != "auto"]),  # train.precision's names
        default="fp32",
        show_default=True,
        help="The network's number format. fp32: as trained, outputs exact to float rounding. "
        "bf16: BatchNorm folded, then weights and activations in bfloat16; about twice as fast "
        "on CPUs with AVX512-BF16 or AMX (refused on other CPUs, where it is slower) and on "
        "GPUs, but outputs move by a few 8-bit levels (docs/performance.md). fp16: the same "
        "on GPUs.",
    )


def weights_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--weights auto|ema|raw``, shared by ``translate``, ``evaluate`` and ``sweep``."""
    import click

    from p2pkit.config import WEIGHTS

    return click.option(
        "--weights",
        type=click.Choice(list(WEIGHTS)),
        default="auto",
        show_default=True,
        help="Generator weights to use: auto takes the moving average of the weights when "
        "the run kept one (train.ema_decay > 0), else the trained weights; ema and raw "
        "choose explicitly.",
    )
