"""Test helpers for plugin authors, shipped as a pytest plugin.

Installing p2pkit makes pytest load this module (``pytest11`` entry point), which
provides the ``p2pkit_registry`` fixture. The conformance checks prove that a
component fits p2pkit's interfaces; call them from your own tests::

    from p2pkit.testing import check_generator

    def test_my_generator_fits_p2pkit(p2pkit_registry):
        G = p2pkit_registry["generators"].create("my_generator")
        check_generator(G)

This module imports torch only inside the checks, so loading the pytest plugin
costs nothing for test suites that never use it.

Why this module is long: it is the pytest plugin that the ``pytest11`` entry point names, and it
holds one conformance check per kind of component side by side, so that a plugin author
finds the whole contract, and the helpers the checks share, in one place.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from p2pkit.registry import Registry, isolated_registries

__all__ = [
    "check_dataset",
    "check_discriminator",
    "check_generator",
    "check_objective",
    "check_recipe",
    "check_source",
    "check_task",
    "p2pkit_registry",
    "smoke_train_and_translate",
]

if TYPE_CHECKING:
    import torch


@pytest.fixture
def p2pkit_registry() -> Iterator[dict[str, Registry]]:
    """Fresh registries for one test: in-process registrations vanish afterwards
    and installed plugins are discovered anew. Maps kind ->
    [`Registry`][p2pkit.registry.Registry]."""
    with isolated_registries() as registries:
        yield registries


def _images(n: int, c: int, size: int, seed: int) -> torch.Tensor:
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=g) * 2 - 1


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_generator(
    G: Any, *, size: int | None = None, batch_size: int = 2, check_range: bool = True
) -> None:
    """Assert that ``G`` behaves as a p2pkit generator.

    Checks: the ``in_channels``, ``out_channels`` and ``size_multiple`` attributes;
    an input (N, in_channels, S, S) in [-1, 1] gives a finite (N, out_channels, S, S)
    output in [-1, 1] (S = ``size``, or the smallest size the generator declares: its
    ``min_size`` rounded up to ``size_multiple``, else ``size_multiple``); every trainable
    parameter receives a gradient; eval mode is deterministic; batch size 1 works.

    Raises:
        AssertionError: naming the first broken expectation.
    """
    import torch

    for attr in ("in_channels", "out_channels", "size_multiple"):
        _require(hasattr(G, attr), f"generator has no '{attr}' attribute")
    multiple = G.size_multiple
    smallest = -(-getattr(G, "min_size", multiple) // multiple) * multiple
    side = size or smallest
    _require(side % multiple == 0, f"size {side} is not a multiple of size_multiple {multiple}")
    _require(
        side >= smallest,
        f"size {side} is below the generator's min_size {getattr(G, 'min_size', multiple)}",
    )
    x = _images(batch_size, G.in_channels, side, 0)
    G.train()
    try:
        y = G(x)
    except RuntimeError as exc:
        raise AssertionError(
            f"the generator fails on a ({batch_size}, {G.in_channels}, {side}, {side}) input: "
            f"{exc}; if it needs larger inputs, declare min_size"
        ) from exc
    expected = (batch_size, G.out_channels, side, side)
    _require(tuple(y.shape) == expected, f"output shape {tuple(y.shape)}, expected {expected}")
    _require(bool(torch.isfinite(y).all()), "output has NaN or inf values")
    if check_range:
        _require(y.min() >= -1 and y.max() <= 1, "output leaves [-1, 1]")
    y.float().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.requires_grad and p.grad is None]
    _require(not missing, f"parameters without gradient: {', '.join(missing[:5])}")
    G.zero_grad(set_to_none=True)
    G.eval()
    with torch.no_grad():
        a, b = G(x[:1]), G(x[:1])
    _require(torch.equal(a, b), "eval mode is not deterministic")
    G.train()


def check_discriminator(
    D: Any,
    *,
    in_channels: int = 3,
    out_channels: int = 3,
    size: int = 64,
    batch_size: int = 2,
) -> None:
    """Assert that ``D`` behaves as a p2pkit discriminator.

    Checks: ``conditional`` and ``receptive_field`` attributes; ``D(x, y)`` returns
    finite logits (N, 1, H', W'); the logits depend on y, depend on x exactly when
    ``conditional`` is true, and gradients reach y.
    """
    import torch

    for attr in ("conditional", "receptive_field"):
        _require(hasattr(D, attr), f"discriminator has no '{attr}' attribute")
    D.eval()
    x = _images(batch_size, in_channels, size, 1)
    y = _images(batch_size, out_channels, size, 2).requires_grad_(True)
    logits = D(x, y)
    _require(logits.dim() == 4, f"logits have {logits.dim()} dimensions, expected 4 (NCHW)")
    _require(
        logits.shape[0] == batch_size and logits.shape[1] == 1,
        f"logits shape {tuple(logits.shape)}, expected ({batch_size}, 1, H', W')",
    )
    _require(bool(torch.isfinite(logits).all()), "logits have NaN or inf values")
    logits.sum().backward()
    _require(y.grad is not None and bool(y.grad.abs().sum() > 0), "no gradient reaches y")
    with torch.no_grad():
        base = D(x, y)
        other_y = D(x, -y)
        other_x = D(-x, y)
    _require(not torch.allclose(base, other_y), "logits do not depend on y")
    if D.conditional:
        _require(not torch.allclose(base, other_x), "conditional D ignores x")
    else:
        _require(torch.allclose(base, other_x), "unconditional D depends on x")
    D.train()


def check_objective(
    objective: Any, D: Any | None = None, *, channels: int = 3, size: int = 32
) -> None:
    """Assert that ``objective`` behaves as a p2pkit objective.

    Checks: ``uses_discriminator``, ``conditional`` and ``loss_names``; the
    generator loss is a finite scalar whose gradient reaches the fake image; the
    discriminator loss (when used) is a finite scalar that does not reach the fake
    image, whose gradient reaches D; every reported term is listed in
    ``loss_names``. ``D`` defaults to a tiny PatchGAN matching ``conditional``.
    """
    import torch

    from p2pkit.models.patchgan import PatchGAN

    for attr in ("uses_discriminator", "conditional", "loss_names"):
        _require(hasattr(objective, attr), f"objective has no '{attr}' attribute")
    if D is None and objective.uses_discriminator:
        D = PatchGAN(channels, channels, ndf=4, n_layers=1, conditional=objective.conditional)
    x = _images(2, channels, size, 3)
    real = _images(2, channels, size, 4)
    fake = _images(2, channels, size, 5).requires_grad_(True)
    g = objective.generator_loss(D, x, real, fake)
    _require(g.total.dim() == 0, "generator loss total is not a scalar")
    _require(bool(torch.isfinite(g.total)), "generator loss is not finite")
    g.total.backward()
    _require(fake.grad is not None, "generator loss does not reach the generated image")
    unknown = set(g.terms) - set(objective.loss_names)
    _require(not unknown, f"terms not in loss_names: {sorted(unknown)}")
    if objective.uses_discriminator:
        fake.grad = None
        D.zero_grad(set_to_none=True)
        d = objective.discriminator_loss(D, x, real, fake)
        _require(d.total.dim() == 0, "discriminator loss total is not a scalar")
        _require(bool(torch.isfinite(d.total)), "discriminator loss is not finite")
        d.total.backward()
        _require(fake.grad is None, "discriminator loss reaches the generator's output")
        _require(
            any(p.grad is not None for p in D.parameters()), "discriminator loss does not reach D"
        )
        unknown = set(d.terms) - set(objective.loss_names)
        _require(not unknown, f"terms not in loss_names: {sorted(unknown)}")


def check_task(task: Any, *, size: int = 16, batch_size: int = 2) -> None:
    """Assert that ``task`` behaves as a p2pkit task.

    Checks: ``in_channels``, ``out_channels``, ``needs_target`` and ``image_channels``;
    ``make_pair`` on sides of the channels the task asks for gives x (N, in_channels,
    H, W) and y (N, out_channels, H, W), finite, in [-1, 1]; ``make_input`` gives the
    same x shape; ``to_rgb`` gives two (N, 3, H, W) images in [-1, 1]; ``output_image``
    has 1 or 3 channels.
    """
    import torch

    for attr in ("in_channels", "out_channels", "needs_target", "image_channels"):
        _require(hasattr(task, attr), f"task has no '{attr}' attribute")
    ch_a, ch_b = task.image_channels
    a = _images(batch_size, ch_a, size, 6)
    b = _images(batch_size, ch_b, size, 7) if task.needs_target else None
    x, y = task.make_pair(a, b)
    shape_x = (batch_size, task.in_channels, size, size)
    shape_y = (batch_size, task.out_channels, size, size)
    _require(tuple(x.shape) == shape_x, f"make_pair x has shape {tuple(x.shape)}, not {shape_x}")
    _require(tuple(y.shape) == shape_y, f"make_pair y has shape {tuple(y.shape)}, not {shape_y}")
    for name, t in (("x", x), ("y", y)):
        _require(bool(torch.isfinite(t).all()), f"make_pair {name} has NaN or inf values")
        _require(t.min() >= -1 and t.max() <= 1, f"make_pair {name} leaves [-1, 1]")
    x_inf = task.make_input(a)
    _require(tuple(x_inf.shape) == shape_x, f"make_input has shape {tuple(x_inf.shape)}")
    rgb_x, rgb_y = task.to_rgb(x, y)
    for name, t in (("input", rgb_x), ("output", rgb_y)):
        expected = (batch_size, 3, size, size)
        _require(tuple(t.shape) == expected, f"to_rgb {name} has shape {tuple(t.shape)}")
        _require(t.min() >= -1 and t.max() <= 1, f"to_rgb {name} leaves [-1, 1]")
    out = task.output_image(x, y)
    _require(out.shape[1] in (1, 3), f"output_image has {out.shape[1]} channels, not 1 or 3")


def check_dataset(dataset: Any, *, layout: Any = None, options: Any = None) -> None:
    """Assert that ``dataset`` (what a layout's factory returned) behaves as a p2pkit dataset.

    Checks: ``a``, ``b``, ``paths`` and ``max_value``; ``a`` (and ``b``) are integer
    (N, C, H, W) tensors in 0..max_value with one row per path; ``batch`` of the first
    rows returns those rows, on the same dtype, with their paths.

    When the layout has a per-file read (``read_file``, see
    [`FileReader`][p2pkit.data.options.FileReader]), it is checked too: reading the first
    row's path gives float32 ``a`` (and ``b`` exactly when the dataset has one) of the
    dataset's channels, finite, in [-1, 1], equal to that row (within 2/255) when the sizes
    match.

    Args:
        dataset: what the layout returned.
        layout: the layout (its name or the registered object); default: the one that
            built ``dataset`` through the registry.
        options: the [`DatasetOptions`][p2pkit.data.options.DatasetOptions] it was built
            with; default: those the registry recorded.

    Raises:
        AssertionError: naming the first broken expectation.
    """
    import torch

    for attr in ("a", "b", "paths", "max_value"):
        _require(hasattr(dataset, attr), f"dataset has no '{attr}' attribute")
    _require(dataset.max_value in (255, 65535), f"max_value {dataset.max_value} is not 255/65535")
    n = len(dataset)
    _require(n > 0, "dataset is empty")
    _require(len(dataset.paths) == n, f"{len(dataset.paths)} paths for {n} rows")
    for side in ("a", "b"):
        t = getattr(dataset, side)
        if t is None:
            _require(side == "b", "side 'a' is None")
            continue
        _require(t.dim() == 4 and t.shape[0] == n, f"side {side} has shape {tuple(t.shape)}")
        _require(not t.is_floating_point(), f"side {side} is {t.dtype}, not integer pixels")
        _require(
            int(t.min()) >= 0 and int(t.max()) <= dataset.max_value,
            f"side {side} leaves 0..{dataset.max_value}",
        )
    rows = list(range(min(n, 2)))
    batch = dataset.batch(rows)
    _require(set(batch) >= {"a", "b", "paths"}, f"batch has keys {sorted(batch)}")
    _require(torch.equal(batch["a"].cpu(), dataset.a[rows].cpu()), "batch 'a' is not those rows")
    _require(
        list(batch["paths"]) == [dataset.paths[i] for i in rows], "batch paths are not those rows"
    )
    _check_read_file(dataset, layout, options)


def _check_read_file(dataset: Any, layout: Any, options: Any) -> None:
    """The per-file read of ``dataset``'s layout, when it has one, against the first row."""
    from pathlib import Path

    import torch

    from p2pkit.data.images import to_float
    from p2pkit.registry import component_spec, get_registry

    spec = component_spec(dataset) or {}
    if layout is None and spec.get("kind") == "datasets":
        layout = spec["name"]
    if options is None:
        options = (spec.get("options") or {}).get("options")
    if isinstance(layout, str):
        layout = get_registry("datasets").get(layout)
    reader = getattr(layout, "read_file", None)
    if reader is None or options is None:
        return
    read = reader(Path(dataset.paths[0]), options)
    _require(isinstance(read, tuple) and len(read) == 2, "read_file does not return a pair (a, b)")
    for side, got in zip(("a", "b"), read, strict=True):
        row = getattr(dataset, side)
        if row is None:
            _require(got is None, f"read_file gives side {side} but the dataset has none")
            continue
        _require(got is not None, f"read_file gives no side {side} but the dataset has one")
        _require(
            got.dtype == torch.float32 and got.dim() == 3,
            f"read_file side {side} is {got.dtype} {tuple(got.shape)}, not float32 (C, H, W)",
        )
        _require(
            got.shape[0] == row.shape[1],
            f"read_file side {side} has {got.shape[0]} channels, the dataset {row.shape[1]}",
        )
        _require(bool(torch.isfinite(got).all()), f"read_file side {side} has NaN or inf values")
        _require(got.min() >= -1 and got.max() <= 1, f"read_file side {side} leaves [-1, 1]")
        stored = to_float(row[0].cpu(), dataset.max_value)
        if got.shape == stored.shape:
            _require(
                bool((got - stored).abs().max() <= 2 / 255),
                f"read_file side {side} of {dataset.paths[0]} differs from the dataset's row",
            )


def check_source(source: Any, folder: Any = None, *, size: int = 32) -> Any:
    """Assert that ``source`` (what a ``p2pkit.sources`` factory returned) behaves as a p2pkit
    data source.

    Checks: ``description`` is a non-empty one-line string, ``downloads`` a bool and
    ``provide`` callable. With a ``folder`` (``tmp_path``) a source that does not download is
    also provided there at ``size`` px: the returned folder must exist and hold files, and
    providing again must give the same folder. A downloading source is never run here.

    Returns:
        The folder provided, or None when nothing was provided.

    Raises:
        AssertionError: naming the first broken expectation.
    """
    from pathlib import Path

    description = getattr(source, "description", None)
    _require(isinstance(description, str), "data source has no 'description' string")
    _require(
        bool(description.strip()) and "\n" not in description,
        "data source description must be one non-empty line",
    )
    _require(
        isinstance(getattr(source, "downloads", None), bool),
        "data source has no 'downloads' bool",
    )
    _require(callable(getattr(source, "provide", None)), "data source has no provide() method")
    if folder is None or source.downloads:
        return None
    target = Path(folder) / "source"
    provided = source.provide(target, size=size, progress=False)
    _require(
        isinstance(provided, Path), f"provide() returned {type(provided).__name__}, not a Path"
    )
    _require(provided.is_dir(), f"provide() returned {provided}, which is not a folder")
    _require(
        any(p.is_file() for p in provided.rglob("*")), f"provide() left {provided} without files"
    )
    again = source.provide(target, size=size, progress=False)
    _require(Path(again) == provided, f"providing again gave {again}, not {provided}")
    return provided


def check_recipe(name_or_path: Any) -> Any:
    """Assert that a recipe loads and that every component it names can be built.

    Builds the task, the objective and the networks exactly as training would (without
    data) and returns the resolved [`Recipe`][p2pkit.config.Recipe].
    """
    from p2pkit.config import load_recipe
    from p2pkit.engine.build import build_networks, build_objective, build_task

    recipe = load_recipe(name_or_path)
    task = build_task(recipe.task)
    check_task(task)
    objective = build_objective(recipe.objective)
    G, D = build_networks(recipe, task, objective)
    multiple = getattr(G, "size_multiple", 1)
    _require(
        recipe.data.crop_size % multiple == 0,
        f"data.crop_size {recipe.data.crop_size} is not a multiple of the generator's "
        f"size_multiple {multiple}",
    )
    _require((D is None) == (not objective.uses_discriminator), "discriminator built wrongly")
    return recipe


def smoke_train_and_translate(
    recipe: Any,
    folder: Any,
    *,
    data_root: Any = None,
    overrides: tuple[str, ...] = (),
    iterations: int = 2,
) -> list[Any]:
    """Train ``recipe`` for a few iterations, then translate with the result: one line for
    a plugin's end-to-end test.

    Args:
        recipe: a registered recipe name, a TOML path or a ``Recipe``.
        folder: a scratch folder (``tmp_path``): the run and the translations go there.
        data_root: the dataset; when this is None, a recipe whose ``data.source`` is
            ``synth`` generates a tiny one, and one whose source is another registered
            source that needs no network is provided into ``folder``.
        overrides: ``--set`` strings that make the recipe small enough for a test
            (narrow networks, small crops); ``train.max_iterations`` is set for you.
        iterations: how many iterations to train.

    Returns:
        The translated image files.
    """
    from pathlib import Path

    from p2pkit.data.images import write_image
    from p2pkit.engine.runs import ensure_data, resolve_recipe
    from p2pkit.engine.trainer import Trainer
    from p2pkit.inference import expand_inputs, load_trained, output_names, translate_files

    folder = Path(folder)
    resolved = resolve_recipe(recipe, (*overrides, f"train.max_iterations={iterations}"))
    if data_root is not None:
        resolved.data.root = str(data_root)
    elif resolved.data.source == "synth":
        from p2pkit.data.synth import synthesize_facades

        resolved.data.root = str(folder / "data")
        size = max(resolved.data.load_size, resolved.data.crop_size)
        synthesize_facades(resolved.data.root, n_train=4, n_val=2, size=size, progress=False)
    else:
        from p2pkit.data.sources import find_source

        source = find_source(resolved.data.source)
        if source is not None and not source.downloads:
            # Made in the scratch folder, never in the data home of the working directory.
            resolved.data.root = str(folder / "data")
    ensure_data(resolved, progress=False)
    run = folder / "run"
    Trainer(resolved, run, progress=False).fit()
    model = load_trained(run, "cpu")
    split = Path(resolved.data.root) / resolved.data.val_split
    files = expand_inputs([split if split.is_dir() else Path(resolved.data.root)])[:2]
    written = []
    names = dict(zip(files, output_names(files), strict=True))
    layout = "aligned" if resolved.data.dataset == "aligned" else "single"
    for path, _, out, _ in translate_files(model, files, layout=layout):
        target = folder / "translated" / names[path]
        write_image(target, out)
        written.append(target)
    _require(len(written) == len(files), "not every input was translated")
    return written
