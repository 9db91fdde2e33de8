"""The small interfaces that components implement.

Generators, discriminators and objectives are ordinary ``torch.nn.Module``
subclasses with a few agreed attributes; tasks and dataset layouts are plain objects.
These protocols document them and [`p2pkit.testing`][p2pkit.testing] checks them
(`check_generator`, `check_discriminator`, `check_objective`, `check_task`,
`check_dataset`, which checks a layout's per-file read too). Network images are NCHW
floats in [-1, 1]; stored images are integers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from p2pkit.data.options import DatasetOptions


@runtime_checkable
class Generator(Protocol):
    """Maps an input image to an output image.

    Attributes:
        in_channels: channels of the input (N, in_channels, H, W).
        out_channels: channels of the output (N, out_channels, H, W).
        size_multiple: H and W must be multiples of this (256 for ``unet_256``).
        min_size: optional; the smallest H and W it takes when that is more than
            ``size_multiple`` (a ResNet generator with ``size_multiple = 4`` whose
            reflection padding needs 8 px, say). Checks and tools read it with
            ``getattr(G, "min_size", G.size_multiple)``.

    ``G(x)`` takes x float (N, in_channels, H, W) in [-1, 1] and returns a float
    (N, out_channels, H, W) in [-1, 1].
    """

    in_channels: int
    out_channels: int
    size_multiple: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Discriminator(Protocol):
    """Scores (input, output) pairs patch by patch.

    Attributes:
        conditional: whether it looks at the input x (eq. 1) or ignores it (eq. 2).
        receptive_field: side of the square patch each logit sees, in pixels.

    ``D(x, y)`` takes x (N, Cin, H, W) and y (N, Cout, H, W) in [-1, 1] and returns
    logits (N, 1, H', W').
    """

    conditional: bool
    receptive_field: int

    def __call__(self, x: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor: ...


class LossTerms(NamedTuple):
    """A loss to minimise and its named parts, for logging.

    Attributes:
        total: scalar tensor to call ``backward()`` on.
        terms: named scalar tensors (detached or not) such as ``G_GAN``, ``G_L1``,
            ``D_real``, ``D_fake``.
    """

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


@runtime_checkable
class Objective(Protocol):
    """The training objective: losses for the discriminator and the generator.

    Attributes:
        uses_discriminator: False for objectives without an adversarial term (L1
            alone): the trainer then builds no discriminator and skips its step.
        conditional: whether the discriminator must see the input (eq. 1).
        loss_names: the names that appear in ``LossTerms.terms``.
    """

    uses_discriminator: bool
    conditional: bool
    loss_names: tuple[str, ...]

    def discriminator_loss(
        self, D: Discriminator, x: torch.Tensor, real: torch.Tensor, fake: torch.Tensor
    ) -> LossTerms: ...

    def generator_loss(
        self,
        D: Discriminator | None,
        x: torch.Tensor,
        real: torch.Tensor,
        fake: torch.Tensor,
    ) -> LossTerms: ...


@runtime_checkable
class Task(Protocol):
    """How the network's input and target are made from a dataset's images.

    Attributes:
        in_channels: channels of the generator's input x.
        out_channels: channels of the generator's output and target y.
        needs_target: whether the dataset must provide side ``b``.
        image_channels: ``(a, b)``: channels the dataset must load for each side.

    ``make_pair(a, b)`` takes the augmented sides (N, Ca, H, W) and (N, Cb, H, W) or None,
    floats in [-1, 1], and returns ``(x, y)``; ``make_input(a)`` returns the deterministic
    x of inference; ``to_rgb(x, y)`` turns network tensors into (N, 3, H, W) RGB in [-1, 1];
    ``output_image(x, y)`` is the image ``translate`` saves for output y of input x.
    """

    in_channels: int
    out_channels: int
    needs_target: bool

    @property
    def image_channels(self) -> tuple[int, int]: ...

    def make_pair(
        self, a: torch.Tensor, b: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def make_input(self, a: torch.Tensor) -> torch.Tensor: ...

    def to_rgb(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def output_image(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Dataset(Protocol):
    """What a dataset layout's factory returns: every image decoded once, batched by index.

    Attributes:
        a: the input side, integer tensor (N, C_in, H, W) in 0..max_value (after the
            direction swap, so ``a`` is always the network's input).
        b: the target side (N, C_out, H, W), same dtype, or None for inputs alone.
        paths: for each row, the file its input side was read from.
        max_value: 255 for 8-bit data, 65535 for 16-bit.

    ``batch(indices)`` returns ``{"a": ..., "b": ... or None, "paths": [...]}`` for those
    rows. A [`DatasetLayout`][p2pkit.interfaces.DatasetLayout] returns it.
    """

    a: torch.Tensor
    b: torch.Tensor | None
    paths: list[Any]
    max_value: int

    def __len__(self) -> int: ...

    def batch(self, indices: Any) -> dict[str, Any]: ...


@runtime_checkable
class DatasetLayout(Protocol):
    """A registered dataset layout (``p2pkit.datasets``): how a dataset is stored on disk.

    ``layout(options)`` takes one [`DatasetOptions`][p2pkit.data.options.DatasetOptions]
    (the parameter is named ``options``) and returns a
    [`Dataset`][p2pkit.interfaces.Dataset]; see the built-in ``aligned``, ``paired`` and
    ``single``. ``layout.read_file(path, options)`` reads one file the way the layout stores a
    row and returns ``(a, b)``: float32 (in_channels, H, W) and (out_channels, H, W) in
    [-1, 1], ``a`` the network input after the direction swap, ``b`` None when the layout
    stores no target ([`FileReader`][p2pkit.data.options.FileReader]). It raises
    [`ImageProblem`][p2pkit.data.decode.ImageProblem] for a file that cannot be used.
    ``read_file`` is optional: ``p2pkit translate`` needs it, training and evaluation do not
    (such a layout does not match this protocol at runtime).
    """

    def __call__(self, options: DatasetOptions) -> Dataset: ...

    def read_file(
        self, path: Path, options: DatasetOptions
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...
