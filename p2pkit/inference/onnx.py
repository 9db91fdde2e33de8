"""A trained generator as an ONNX file, checked against p2pkit, and run with onnxruntime.

[`export_onnx`][p2pkit.inference.onnx.export_onnx] writes the generator of a checkpoint in eval
mode, BatchNorm folded into the convolutions and dropout removed
([`fold_batchnorm`][p2pkit.models.fold.fold_batchnorm]), with PyTorch's ``torch.export``-based
ONNX exporter (``torch.onnx.export(..., dynamo=True)``). The graph has one input and one output:

* ``input``: float32 (N, in_channels, H, W) in [-1, 1];
* ``output``: float32 (N, out_channels, H, W) in [-1, 1];

with N, H and W free (``batch``, ``height``, ``width``), H and W multiples of the network's size
multiple (256 for ``unet_256``). For other sizes pad first, as
[`translate_tensor`][p2pkit.inference.translate_tensor] does: reflect-pad each side up to the
next multiple, half of the padding before and half after (the odd pixel after), run, and crop
the padding off the output. The file's metadata (``metadata_props``) records what a consumer
needs: see [`METADATA_KEYS`][p2pkit.inference.onnx.METADATA_KEYS].

Every export is checked before it is kept: onnxruntime runs the file on random inputs at two
sizes and its output must match p2pkit's eval-mode output within
[`TOLERANCE`][p2pkit.inference.onnx.TOLERANCE] (max abs), and the graph must have exactly the
named, dynamic input and output above.

[`OnnxGenerator`][p2pkit.inference.onnx.OnnxGenerator] runs an exported file where p2pkit
expects a generator, so ``p2pkit translate --engine onnxruntime`` pads and tiles as the torch
engine does. The paper's test-time protocol (dropout on, BatchNorm with the statistics of the
test batch) is not a fixed graph and cannot be exported.

These functions need the ``onnx`` extra: ``pip install "p2pkit[onnx]"``.

Why this module is long: export, the check of the exported file and the engine that runs it
share one contract (the names, dynamic sizes and metadata of the graph); the check is what
makes an exported file trustworthy, so it stays next to the code that writes and reads it.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from p2pkit.errors import CheckpointError, ConfigError, P2PKitError

if TYPE_CHECKING:
    from p2pkit.inference.model import TrainedModel

__all__ = [
    "INPUT_NAME",
    "METADATA_KEYS",
    "ONNX_FILE",
    "OUTPUT_NAME",
    "TOLERANCE",
    "ExportResult",
    "OnnxGenerator",
    "check_onnx_file",
    "default_onnx_path",
    "export_onnx",
    "onnx_metadata",
    "require_onnx",
    "run_folder",
    "with_onnx_engine",
]

INPUT_NAME = "input"
"""Name of the graph's one input, float32 (N, in_channels, H, W) in [-1, 1]."""

OUTPUT_NAME = "output"
"""Name of the graph's one output, float32 (N, out_channels, H, W) in [-1, 1]."""

ONNX_FILE = "generator.onnx"
"""Where ``p2pkit export`` writes in the run folder, and where ``translate`` looks for it."""

TOLERANCE = 1e-4
"""Largest absolute difference allowed between onnxruntime's and p2pkit's eval-mode outputs."""

METADATA_KEYS = {
    "p2pkit_version": "the p2pkit version that exported the file",
    "recipe": "the recipe's name",
    "task": "the task component (translation, colorization...)",
    "direction": "AtoB or BtoA: which side of the training pairs is the input",
    "generator": "the generator component (unet_256...)",
    "in_channels": "channels of the input",
    "out_channels": "channels of the output",
    "value_range": "[-1, 1], for input and output",
    "layout": "NCHW float32",
    "size_multiple": "H and W must be multiples of this",
    "min_size": "the smallest H and W the network accepts",
    "padding": "how to run other sizes",
    "crop_size": "the side of the training crops",
    "checkpoint": "the checkpoint folder exported (step-XXXXXXXX)",
    "weights": "ema (moving average of the weights) or raw",
}
"""The ``metadata_props`` every exported file carries, with what each value means."""

_PADDING_RULE = (
    "reflect-pad H and W to the next multiple of size_multiple, half before and half after "
    "(the odd pixel after), then crop the output back"
)

_EXTRA = 'pip install "p2pkit[onnx]"'


def require_onnx(what: str = "p2pkit export --format onnx", *, runtime_only: bool = False) -> None:
    """Raise one line naming the extra when onnx, onnxscript or onnxruntime is missing.

    Args:
        what: the feature that needs them, named in the message.
        runtime_only: check only for onnxruntime (running a file, not exporting one).

    Raises:
        ConfigError: a package is missing.
    """
    names = ("onnxruntime",) if runtime_only else ("onnx", "onnxscript", "onnxruntime")
    for name in names:
        try:
            __import__(name)
        except ImportError:
            raise ConfigError(f"{what} needs {name}, which is not installed: {_EXTRA}") from None


def run_folder(checkpoint: Path) -> Path:
    """The run folder of a checkpoint folder (``RUN/checkpoints/step-*``); else the folder."""
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent
    return checkpoint


def default_onnx_path(checkpoint: Path) -> Path:
    """``RUN/generator.onnx`` for a checkpoint folder of RUN."""
    return run_folder(checkpoint) / ONNX_FILE


def onnx_metadata(model: TrainedModel) -> dict[str, str]:
    """The metadata an export of ``model`` carries (keys of
    [`METADATA_KEYS`][p2pkit.inference.onnx.METADATA_KEYS]), as strings."""
    from p2pkit import __version__

    generator = model.generator
    spec = model.meta.get("networks", {}).get("generator", {})
    options = spec.get("options", {})
    recipe = model.meta.get("recipe") or {}
    multiple = int(getattr(generator, "size_multiple", 1) or 1)
    in_channels = getattr(generator, "in_channels", options.get("in_channels"))
    out_channels = getattr(generator, "out_channels", options.get("out_channels"))
    return {
        "p2pkit_version": __version__,
        "recipe": str(recipe.get("name", "")),
        "task": str((recipe.get("task") or {}).get("name", "translation")),
        "direction": model.direction,
        "generator": str(spec.get("name", type(generator).__name__)),
        "in_channels": str(in_channels),
        "out_channels": str(out_channels),
        "value_range": "[-1, 1]",
        "layout": "NCHW float32",
        "size_multiple": str(multiple),
        "min_size": str(int(getattr(generator, "min_size", multiple) or multiple)),
        "padding": _PADDING_RULE,
        "crop_size": str(model.crop_size),
        "checkpoint": Path(model.checkpoint).name,
        "weights": model.weights,
    }


@dataclass
class ExportResult:
    """What [`export_onnx`][p2pkit.inference.onnx.export_onnx] wrote and how it checked.

    Attributes:
        path: the ONNX file.
        opset: the ONNX opset of the default domain.
        metadata: the file's ``metadata_props``.
        checks: ``(input shape, max abs difference)`` per checked size.
    """

    path: Path
    opset: int
    metadata: dict[str, str]
    checks: list[tuple[tuple[int, ...], float]] = field(default_factory=list)


def _plain_convolutions(module: nn.Module) -> None:
    """Turn the U-Net's CPU-tuned convolutions back into plain ones, in place.

    [`DownConv`][p2pkit.models.layers.DownConv] and [`UpConv`][p2pkit.models.layers.UpConv] pick
    a matmul form by the input's size, a branch ``torch.export`` would fix to the example's size.
    They hold exactly the parameters of ``nn.Conv2d`` and ``nn.ConvTranspose2d`` and add no
    state, so changing their class gives the same results through one graph for every size.
    """
    from p2pkit.models.layers import DownConv, UpConv

    for m in module.modules():
        if type(m) is DownConv:
            m.__class__ = nn.Conv2d
        elif type(m) is UpConv:
            m.__class__ = nn.ConvTranspose2d


_SINGLE_FILE_LIMIT = 1_800_000_000
"""Weights above this many bytes go to ``FILE.data`` beside the file (protobuf's 2 GB limit)."""


def _save(model: Any, tmp: Path, final: Path) -> None:
    """Write the ONNX IR ``model`` to ``tmp``, which will be renamed to ``final``.

    Weights of more than 1.8 GB (``unet_256`` with ``ngf`` 256, for one) cannot be in one
    protobuf file; they go to ``final.data``, named as the renamed file will reference it.
    """
    import onnx_ir

    size = sum(
        v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None
    )
    if size > _SINGLE_FILE_LIMIT:
        onnx_ir.save(model, tmp, external_data=f"{final.name}.data")
    else:
        onnx_ir.save(model, tmp)


def _check_sizes(multiple: int, min_size: int) -> list[tuple[int, int, int]]:
    """(batch, H, W) of the two checks: the smallest valid square, then a 2-image 1:2 strip."""
    side = multiple * max(1, math.ceil(min_size / multiple))
    return [(1, side, side), (2, side, 2 * side)]


def _symbolic_dims(value: Any) -> list[str | int]:
    """Dims of an ONNX ValueInfoProto: ``dim_param`` names, else ``dim_value`` ints."""
    dims: list[str | int] = []
    for d in value.type.tensor_type.shape.dim:
        dims.append(d.dim_param if d.HasField("dim_param") else int(d.dim_value))
    return dims


def _check_graph(path: Path, in_channels: int, out_channels: int) -> None:
    """Raise unless the file has exactly ``input`` and ``output``, float, with free N, H, W."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    for kind, values, name, channels in (
        ("input", inputs, INPUT_NAME, in_channels),
        ("output", list(graph.output), OUTPUT_NAME, out_channels),
    ):
        names = [v.name for v in values]
        if names != [name]:
            raise P2PKitError(
                f"{path}: the exported graph has {kind}s {names}, not [{name!r}]; this is a bug "
                "in the exporter or p2pkit, report it with --debug output"
            )
        dims = _symbolic_dims(values[0])
        elem = values[0].type.tensor_type.elem_type
        free = len(dims) == 4 and all(isinstance(dims[i], str) and dims[i] for i in (0, 2, 3))
        if elem != onnx.TensorProto.FLOAT or not free or dims[1] != channels:
            raise P2PKitError(
                f"{path}: the graph's {kind} {name!r} is {dims} of ONNX type {elem}, not float32 "
                f"(batch, {channels}, height, width) with free batch, height and width; this is a "
                "bug in the exporter or p2pkit, report it with --debug output"
            )


def check_onnx_file(
    path: str | os.PathLike[str],
    reference: nn.Module,
    *,
    in_channels: int,
    out_channels: int,
    sizes: list[tuple[int, int, int]],
    tolerance: float = TOLERANCE,
    seed: int = 0,
) -> list[tuple[tuple[int, ...], float]]:
    """Check an exported file against the network it came from.

    Args:
        path: the ONNX file.
        reference: the generator in eval mode (not folded: the check covers the folding too),
            on the CPU in float32.
        in_channels: channels the input must declare.
        out_channels: channels the output must declare.
        sizes: (batch, H, W) to run, multiples of the size multiple.
        tolerance: the largest max abs difference accepted.
        seed: seed of the random inputs, uniform in [-1, 1].

    Returns:
        ``(input shape, max abs difference)`` per size.

    Raises:
        P2PKitError: the graph's input or output is not as declared, or an output differs
            by more than ``tolerance``.
    """
    path = Path(path)
    _check_graph(path, in_channels, out_channels)
    session = _session(path, threads=None, device="cpu")
    gen = torch.Generator().manual_seed(seed)
    results = []
    for n, h, w in sizes:
        x = torch.rand(n, in_channels, h, w, generator=gen) * 2 - 1
        with torch.no_grad():
            expected = reference(x).float()
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        got_t = torch.from_numpy(got)
        if got_t.shape != expected.shape:
            raise P2PKitError(
                f"{path}: onnxruntime returned {tuple(got_t.shape)} for an input of "
                f"{tuple(x.shape)}, p2pkit {tuple(expected.shape)}; the export is wrong"
            )
        diff = float((got_t - expected).abs().max())
        results.append((tuple(x.shape), diff))
        if not diff <= tolerance:  # also catches NaN
            raise P2PKitError(
                f"{path}: onnxruntime's output differs from p2pkit's eval-mode output by "
                f"{diff:.3g} (max abs) on a {tuple(x.shape)} input, more than {tolerance:g}; "
                "the export is wrong, so it was not kept"
            )
    return results


def export_onnx(
    model: TrainedModel,
    out: str | os.PathLike[str] | None = None,
    *,
    opset: int | None = None,
    check: bool = True,
) -> ExportResult:
    """Export ``model``'s generator to ONNX (eval mode, folded), check it, and write it.

    Args:
        model: from [`load_trained`][p2pkit.inference.load_trained] (not folded: it is the
            reference of the check). The export runs on the CPU in float32.
        out: the file to write; default ``RUN/generator.onnx``
            ([`default_onnx_path`][p2pkit.inference.onnx.default_onnx_path]). An existing file
            is replaced only once the new one has passed the check.
        opset: the ONNX opset; ``None`` takes the exporter's default (20 with torch 2.14).
        check: run [`check_onnx_file`][p2pkit.inference.onnx.check_onnx_file] at two sizes
            before keeping the file (``False`` only for tests of the check itself).

    Returns:
        The file, its opset, metadata and check results.

    Raises:
        ConfigError: the onnx extra is missing, or ``out`` is a folder.
        P2PKitError: the exporter failed, or the check did.
    """
    require_onnx()
    import onnx

    from p2pkit.models.fold import fold_batchnorm, is_folded
    from p2pkit.models.protocol import inference_protocol

    if is_folded(model.generator):
        raise ValueError("export_onnx needs the generator as loaded, not a folded copy")
    newest = onnx.defs.onnx_opset_version()
    if opset is not None and opset > newest:
        raise ConfigError(
            f"--opset {opset} is newer than the installed onnx package knows ({newest}); "
            "choose an older opset, or leave --opset out"
        )
    path = Path(out) if out is not None else default_onnx_path(model.checkpoint)
    if path.is_dir():
        raise ConfigError(
            f"--out {path} is a folder; give the ONNX file to write, e.g. {path / ONNX_FILE}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = onnx_metadata(model)
    in_channels = int(metadata["in_channels"])
    out_channels = int(metadata["out_channels"])
    multiple = int(metadata["size_multiple"])
    min_size = int(metadata["min_size"])

    # The export runs on the CPU in float32; a network elsewhere is copied, not moved.
    reference = model.generator
    tensors = [*reference.parameters(), *reference.buffers()]
    if any(
        t.device.type != "cpu" or (t.is_floating_point() and t.dtype != torch.float32)
        for t in tensors
    ):
        reference = copy.deepcopy(reference).to("cpu", torch.float32)
    net = fold_batchnorm(reference)
    _plain_convolutions(net)

    # H = multiple * k with k free; the example uses k = 2 (and 2 images) because torch.export
    # fixes a dimension whose example size is 1 (for the U-Net, k is the bottleneck's side).
    k_min = max(1, math.ceil(min_size / multiple))
    k_h = torch.export.Dim("k_height", min=k_min)
    k_w = torch.export.Dim("k_width", min=k_min)
    batch = torch.export.Dim("batch", min=1)
    side = multiple * max(2, k_min)
    example = torch.zeros(2, in_channels, side, side)
    dynamic = ({0: batch, 2: multiple * k_h, 3: multiple * k_w},)
    try:
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic,
            opset_version=opset,
            verbose=False,
        )
    except Exception as exc:  # the exporter's own errors are long reports
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise P2PKitError(
            f"exporting generator {metadata['generator']} to ONNX failed: {first} (run with "
            "--debug for the exporter's report)"
        ) from exc
    assert program is not None
    ir_model = program.model
    # Name the free dimensions of the input and output as a consumer reads them.
    for value in (*ir_model.graph.inputs, *ir_model.graph.outputs):
        dims = list(value.shape)
        value.shape = type(value.shape)(["batch", dims[1], "height", "width"])
    ir_model.metadata_props.update(metadata)
    opset_used = int(ir_model.opset_imports.get("", 0))
    if opset is not None and opset_used != opset:
        raise ConfigError(
            f"--opset {opset}: the exporter could not convert the graph to opset {opset} (it "
            f"stayed at {opset_used}); choose a newer opset, or leave --opset out"
        )

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        _save(ir_model, tmp, path)
        result = ExportResult(path, opset_used, metadata)
        if check:
            with inference_protocol(reference, "eval"):
                result.checks = check_onnx_file(
                    tmp,
                    reference,
                    in_channels=in_channels,
                    out_channels=out_channels,
                    sizes=_check_sizes(multiple, min_size),
                )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # The check loaded the file already; this confirms the metadata went in.
    stored = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    missing = [key for key in metadata if stored.get(key) != metadata[key]]
    if missing:
        raise P2PKitError(f"{path}: metadata {missing} was not written; report this as a bug")
    return result


def _threads() -> int:
    """Threads for onnxruntime's operators: as many as torch uses (``OMP_NUM_THREADS``...)."""
    return max(1, torch.get_num_threads())


def _session(path: Path, threads: int | None, device: str) -> Any:
    """An onnxruntime session for ``path``: all graph optimisations, ``threads`` intra-op
    threads, one inter-op thread; CUDA when ``device`` is cuda and onnxruntime has it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or _threads()
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph... classes
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: onnxruntime cannot load it ({first}); export it again with p2pkit export"
        ) from None


class OnnxGenerator(nn.Module):
    """An exported generator run by onnxruntime, usable wherever p2pkit runs a generator.

    It has no parameters and does not depend on train/eval mode: the file is a fixed eval-mode
    graph. [`translate_tensor`][p2pkit.inference.translate_tensor] pads and tiles with it as with
    the torch network, from its ``size_multiple``.

    Args:
        path: an ONNX file written by ``p2pkit export``.
        threads: onnxruntime's intra-op threads; default as many as torch uses
            (``torch.get_num_threads()``, which follows ``OMP_NUM_THREADS``).
        device: ``cpu``, or ``cuda`` to use onnxruntime's CUDA provider when it has one.

    Attributes:
        path: the file.
        metadata: its ``metadata_props`` (see
            [`METADATA_KEYS`][p2pkit.inference.onnx.METADATA_KEYS]).
        size_multiple: H and W of each call must be multiples of it.
        in_channels: channels of the input.
        out_channels: channels of the output.

    Raises:
        ConfigError: onnxruntime is not installed.
        CheckpointError: the file cannot be loaded, or was not written by ``p2pkit export``.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, threads: int | None = None, device: str = "cpu"
    ) -> None:
        super().__init__()
        require_onnx("the onnxruntime engine", runtime_only=True)
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(
                f"{self.path}: no such ONNX file; write it with p2pkit export RUN --format onnx"
            )
        self.session = _session(self.path, threads, device)
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        names = (
            [i.name for i in self.session.get_inputs()],
            [o.name for o in self.session.get_outputs()],
        )
        if names != ([INPUT_NAME], [OUTPUT_NAME]) or "size_multiple" not in meta:
            raise CheckpointError(
                f"{self.path}: not a generator written by p2pkit export (inputs {names[0]}, "
                f"outputs {names[1]}); export it with p2pkit export RUN --format onnx"
            )
        self.metadata = meta
        self.size_multiple = int(meta["size_multiple"])
        self.min_size = int(meta.get("min_size", self.size_multiple))
        self.in_channels = int(meta["in_channels"])
        self.out_channels = int(meta["out_channels"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph: float (N, in_channels, H, W) in [-1, 1], H and W multiples of
        ``size_multiple`` -> (N, out_channels, H, W) in [-1, 1], on ``x``'s device and dtype."""
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        (y,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: arr})
        return torch.from_numpy(y).to(device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}, size_multiple={self.size_multiple}"


def with_onnx_engine(
    model: TrainedModel, onnx_file: str | os.PathLike[str] | None = None
) -> TrainedModel:
    """``model`` with an [`OnnxGenerator`][p2pkit.inference.onnx.OnnxGenerator] as its generator.

    The checkpoint still supplies the task, the direction and the data settings; the ONNX file
    supplies the network.

    Args:
        model: from [`load_trained`][p2pkit.inference.load_trained].
        onnx_file: the file to run. Default: ``RUN/generator.onnx``
            ([`default_onnx_path`][p2pkit.inference.onnx.default_onnx_path]), which must have
            been exported from ``model``'s checkpoint and weights, so that a run trained further
            since its export is not translated with the older network by mistake. A file given
            explicitly is used whatever checkpoint it came from.

    Returns:
        A copy of ``model`` whose ``generator`` runs the file.

    Raises:
        CheckpointError: no file, a file p2pkit did not write, a default file exported from
            another checkpoint or other weights, or channels that do not fit the task.
    """
    import dataclasses

    explicit = onnx_file is not None
    path = Path(onnx_file) if explicit else default_onnx_path(model.checkpoint)
    if not path.is_file():
        run = run_folder(model.checkpoint)
        raise CheckpointError(
            f"{path}: no such ONNX file; write it with p2pkit export {run} --format onnx "
            f"--out {path}"
            if explicit
            else f"{path}: no such ONNX file for --engine onnxruntime; write it with p2pkit "
            f"export {run} --format onnx, or pass --onnx FILE"
        )
    generator = OnnxGenerator(path, device=model.device.type)
    meta = generator.metadata
    if not explicit:
        exported = (meta.get("checkpoint"), meta.get("weights"))
        wanted = (Path(model.checkpoint).name, model.weights)
        if exported != wanted:
            raise CheckpointError(
                f"{path} was exported from {exported[0]} ({exported[1]} weights), but this "
                f"translation uses {wanted[0]} ({wanted[1]} weights); export it again with "
                f"p2pkit export {run_folder(model.checkpoint)} --format onnx, or pass --onnx "
                f"{path} to use it anyway"
            )
    spec = model.meta.get("networks", {}).get("generator", {}).get("options", {})
    expected = (spec.get("in_channels"), spec.get("out_channels"))
    if None not in expected and expected != (generator.in_channels, generator.out_channels):
        raise CheckpointError(
            f"{path}: the ONNX generator maps {generator.in_channels} to "
            f"{generator.out_channels} channels, but the checkpoint's task needs {expected[0]} "
            f"to {expected[1]}; export the generator of this run"
        )
    return dataclasses.replace(model, generator=generator)
