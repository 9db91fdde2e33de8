"""How a trained generator is run at test time.

Section 3.3 of the paper: "At inference time, we run the generator net in exactly
the same manner as during the training phase. This differs from the usual protocol
in that we apply dropout at test time, and we apply batch normalization using the
statistics of the test batch, rather than aggregated statistics of the training
batch." That is the ``"paper"`` protocol; ``"eval"`` is the usual PyTorch eval mode
(no dropout, running BatchNorm statistics), which is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from p2pkit.errors import ConfigError

PROTOCOLS = ("eval", "paper")


@contextmanager
def inference_protocol(module: nn.Module, protocol: str = "eval") -> Iterator[nn.Module]:
    """Run ``module`` under a test-time protocol, restoring its state afterwards.

    Args:
        module: a generator (any ``nn.Module``).
        protocol: ``"eval"`` (dropout off, running BatchNorm statistics) or
            ``"paper"`` (dropout on, BatchNorm normalises with the statistics of the
            test batch; the stored running statistics are left untouched).

    With ``"paper"`` and batch size 1, BatchNorm uses the statistics of that one
    image, which is what the paper's batch-size-1 experiments do (section 3.3).

    Raises:
        ConfigError: ``"paper"`` for a copy made by
            [`fold_batchnorm`][p2pkit.models.fold.fold_batchnorm], which has no BatchNorm
            statistics or dropout left to run it with.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    if protocol == "paper" and getattr(module, "_p2pkit_folded", False):
        raise ConfigError(
            "the paper's test-time protocol needs the generator's BatchNorm layers and dropout, "
            "which this folded copy has merged or removed; load it with load_trained(..., "
            "fold=False)"
        )
    was_training = {m: m.training for m in module.modules()}
    saved: dict[_BatchNorm, tuple] = {}
    try:
        if protocol == "eval":
            module.eval()
        else:
            module.train()
            for m in module.modules():
                if isinstance(m, _BatchNorm):
                    # momentum 0 keeps the running statistics fixed while training-mode
                    # BatchNorm normalises with the batch's own statistics.
                    tracked = m.num_batches_tracked
                    saved[m] = (m.momentum, None if tracked is None else tracked.clone())
                    m.momentum = 0.0
        yield module
    finally:
        for m, (momentum, tracked) in saved.items():
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
        for m, training in was_training.items():
            m.training = training
