"""An inference copy of a generator: eval-mode BatchNorm folded into its convolutions.

In eval mode a BatchNorm layer is a fixed per-channel affine map,
``y = (x - mean) / sqrt(var + eps) * gamma + beta``, so when it directly follows a convolution
(or a transposed convolution) it can be merged into that convolution's weights and bias, and the
network does one pass over the feature maps fewer. Dropout does nothing in eval mode and is
removed. [`fold_batchnorm`][p2pkit.models.fold.fold_batchnorm] returns such a copy; the original
is left as it is, so it can still be trained or run under the paper's test-time protocol
([`inference_protocol`][p2pkit.models.protocol.inference_protocol] with ``"paper"``), which
normalises with the statistics of the test batch and keeps dropout on: a folded copy cannot do
that, and must only be used for eval-mode inference.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.modules.dropout import _DropoutNd

__all__ = ["fold_batchnorm", "is_folded"]


# Exact types only: a subclass may change what the layer computes (timm's BatchNormAct2d adds an
# activation, its StdConv2d standardises the weights on every call), and folding would drop that.
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _conv_types() -> tuple[type[nn.Module], ...]:
    from p2pkit.models.layers import DownConv, UpConv  # same parameters and results as nn's

    plain = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d)
    return (*plain, nn.ConvTranspose3d, DownConv, UpConv)


def _tail_conv(module: nn.Module) -> _ConvNd | None:
    """The convolution whose output is ``module``'s output, if there is one.

    A convolution itself, or the last layer of a (nested) ``nn.Sequential`` when that is a
    convolution: the ResNet plugin's stem, ``Sequential(Sequential(pad, conv), norm, ReLU)``,
    has its convolution one level down.
    """
    while isinstance(module, nn.Sequential) and len(module) > 0:
        module = module[len(module) - 1]
    return module if type(module) in _conv_types() else None  # type: ignore[return-value]


def _foldable(conv: _ConvNd, norm: nn.Module) -> bool:
    """Whether ``norm`` is an eval-mode BatchNorm over exactly ``conv``'s output channels."""
    return (
        type(norm) in _NORMS
        and isinstance(norm, _BatchNorm)
        and norm.running_mean is not None  # track_running_stats=False normalises per batch
        and norm.running_var is not None
        and norm.num_features == conv.out_channels
    )


@torch.no_grad()
def _fold_pair(conv: _ConvNd, norm: _BatchNorm) -> None:
    """Merge ``norm`` into ``conv`` in place (the caller replaces ``norm`` by an identity).

    ``conv.weight`` is (out, in / groups, *k) for a convolution and (in, out / groups, *k) for
    a transposed convolution; each output channel's slice is scaled by
    ``gamma / sqrt(var + eps)``, and the bias becomes ``(bias - mean) * scale + beta``. The
    scale and the shift are computed in float64 and rounded once to the weights' dtype.
    """
    weight = conv.weight
    dtype = weight.dtype
    var = norm.running_var.double()
    mean = norm.running_mean.double()
    gamma = norm.weight.double() if norm.weight is not None else torch.ones_like(var)
    beta = norm.bias.double() if norm.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + norm.eps)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(mean)
    new_bias = (bias - mean) * scale + beta

    w = weight.double()
    k = w.shape[2:]
    if conv.transposed:
        # (in, out/groups, *k): output channel g * (out/groups) + j lives in group g's rows.
        groups = conv.groups
        w = w.reshape(groups, w.shape[0] // groups, w.shape[1], *k)
        w = w * scale.reshape(groups, 1, -1, *([1] * len(k)))
        w = w.reshape(weight.shape)
    else:
        w = w * scale.reshape(-1, *([1] * (w.dim() - 1)))
    conv.weight.copy_(w.to(dtype))
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias.to(dtype=dtype, device=weight.device))
    else:
        conv.bias.copy_(new_bias.to(dtype))


def _fold_children(module: nn.Module) -> int:
    """Fold every foldable (convolution, BatchNorm) pair below ``module``; return how many."""
    folded = 0
    if isinstance(module, nn.Sequential):
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv = _tail_conv(module._modules[first])
            norm = module._modules[second]
            if conv is not None and norm is not None and _foldable(conv, norm):
                assert isinstance(norm, _BatchNorm)
                _fold_pair(conv, norm)
                module._modules[second] = nn.Identity()
                folded += 1
    for name, child in module._modules.items():
        if isinstance(child, _DropoutNd):
            module._modules[name] = nn.Identity()
        elif child is not None:
            folded += _fold_children(child)
    return folded


def fold_batchnorm(module: nn.Module, *, inplace: bool = False) -> nn.Module:
    """An eval-only copy of ``module`` with BatchNorm folded into convolutions and no dropout.

    Folded: every BatchNorm (``BatchNorm2d``, or ``SyncBatchNorm`` after a multi-GPU run) that
    directly follows a ``Conv*d`` or ``ConvTranspose*d`` (or p2pkit's ``DownConv`` and
    ``UpConv``) inside an ``nn.Sequential``, the convolution being the previous layer or the last
    layer of the previous (nested) Sequential. Subclasses of these layers from other libraries
    are left alone, since they may compute something else (timm's ``BatchNormAct2d`` adds an
    activation, its ``StdConv2d`` standardises its weights).
    That covers the U-Net (``LeakyReLU -> conv -> norm`` in the encoder,
    ``ReLU -> transposed conv -> norm -> dropout`` in the decoder) and the ResNet plugin's
    generator. Left alone: BatchNorm after anything else (an activation, a sum, a
    concatenation), BatchNorm without running statistics, and InstanceNorm, which depends on
    each image. Every ``Dropout*`` becomes an ``nn.Identity``.

    The result equals ``module.eval()``'s output to float rounding only, not bit for bit: the
    folded weights ``w * gamma / sqrt(var + eps)`` are rounded to the weights' dtype once, and
    the convolution then sums products of those rounded weights, whereas eval-mode BatchNorm
    rounds the convolution's sums and then its own arithmetic; the convolution kernels may
    also sum in another order for the new bias. In float32 outputs differ by a few units in
    the last place (about 1e-7 for the paper's U-Net; the tests allow 1e-5).

    Args:
        module: a generator (any ``nn.Module``); not changed unless ``inplace``.
        inplace: fold ``module`` itself instead of a copy, which saves holding the weights
            twice; for a network that nothing else uses.

    Returns:
        A deep copy (or ``module`` itself) in eval mode, with the same attributes
        (``size_multiple``...), on the same device and with the same dtype, mapping the same
        (N, C, H, W) inputs to the same outputs as ``module`` in eval mode. It has no
        BatchNorm statistics to update and no dropout, so training it is meaningless, and
        [`inference_protocol`][p2pkit.models.protocol.inference_protocol] refuses to run it
        under the paper's protocol.
    """
    folded = module if inplace else copy.deepcopy(module)
    _fold_children(folded)
    folded.eval()
    # Parameters keep requires_grad as they were: with it off, torch.matmul in DownConv's and
    # UpConv's CPU path no longer folds the batch into one matrix product and runs as a slower
    # batched one (measured: unet_256 inference 20% slower at batch 1).
    folded._p2pkit_folded = True  # type: ignore[assignment]
    return folded


def is_folded(module: nn.Module) -> bool:
    """Whether ``module`` came from [`fold_batchnorm`][p2pkit.models.fold.fold_batchnorm]."""
    return bool(getattr(module, "_p2pkit_folded", False))
