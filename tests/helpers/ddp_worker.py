"""A torchrun worker for tests/test_distributed.py: train a recipe, then save this rank's state.

Run as ``torchrun --standalone --nproc_per_node=N tests/helpers/ddp_worker.py RECIPE RUN OUT``
(or plainly with ``python`` for one process). Each rank writes ``OUT/rank<r>.safetensors``
holding its generator's and discriminator's weights and the discriminator's gradients
left by the last D step, so the test can compare ranks and runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import safetensors.torch

from p2pkit.config import load_recipe
from p2pkit.engine.device import resolve_device
from p2pkit.engine.distributed import init_distributed, shutdown_distributed
from p2pkit.engine.trainer import Trainer


def main() -> None:
    recipe_path, run_dir, out = sys.argv[1:4]
    recipe = load_recipe(recipe_path)
    ctx, _ = init_distributed(resolve_device("cpu"), "gloo")
    try:
        trainer = Trainer(recipe, Path(run_dir), progress=False, dist=ctx)
        trainer.fit()
        state = {f"G/{k}": v for k, v in trainer.G.state_dict().items()}
        state.update({f"D/{k}": v for k, v in trainer.D.state_dict().items()})
        for name, p in trainer.D.named_parameters():
            state[f"D_grad/{name}"] = p.grad
        Path(out).mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file(
            {k: v.contiguous() for k, v in state.items()}, f"{out}/rank{ctx.rank}.safetensors"
        )
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    main()
