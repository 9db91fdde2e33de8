"""An exponential moving average of the generator's weights.

Not part of the paper: averaging a GAN generator's weights over the last few
thousand iterations smooths out the oscillation that adversarial training leaves
in them, and usually gives cleaner outputs at no training cost (Yazici et al.,
"The Unusual Effectiveness of Averaging in GAN Training", ICLR 2019). The average
itself is timm's ``ModelEmaV3``; this module only fixes how p2pkit sets it up.
"""

from __future__ import annotations

from typing import Any

from torch import nn

# timm's suggestion for runs of up to some ten thousand steps: the decay reaches
# 0.99 after about 460 steps and 0.999 after about 10 000.
WARMUP_POWER = 0.75


def make_generator_ema(generator: nn.Module, decay: float, *, warmup: bool = True) -> Any:
    """A ``timm.utils.ModelEmaV3`` tracking ``generator``.

    Args:
        generator: the network being trained, already on its device and in its
            memory format; the average is a deep copy of it, kept in eval mode.
        decay: the largest decay, in (0, 1).
        warmup: ramp the decay as ``1 - (1 + t) ** -0.75`` at step t (capped at
            ``decay``), so the first steps do not keep the random initial weights.

    Returns:
        The EMA wrapper: call ``ema.update(generator, step=t)`` after each generator
        step (t counts from 1); ``ema.module`` is the averaged network. Parameters
        and buffers (BatchNorm running statistics) are both averaged.
    """
    from timm.utils import ModelEmaV3

    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be in (0, 1), not {decay}")
    ema = ModelEmaV3(generator, decay=decay, use_warmup=warmup, warmup_power=WARMUP_POWER)
    ema.module.requires_grad_(False)
    return ema


__all__ = ["WARMUP_POWER", "make_generator_ema"]
