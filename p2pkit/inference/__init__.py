"""Using a trained generator: on tensors, on image files, from a checkpoint.

Levels of one path, each built on the ones before:

* `p2pkit.inference.tensors`: [`translate_tensor`][p2pkit.inference.translate_tensor] runs any
  generator on images of any size (padded to its size multiple, optionally in blended tiles) and
  [`translate_images`][p2pkit.inference.translate_images] on a list of them, batching images of one
  size;
* `p2pkit.inference.model`: [`load_trained`][p2pkit.inference.load_trained] rebuilds the generator
  and the task a checkpoint records;
* `p2pkit.inference.files`: naming outputs, checking inputs and reading them, the first
  steps of ``p2pkit translate``;
* `p2pkit.inference.pipeline`: translating files, read ahead, batched, two batches at once on
  a CPU and written behind; ``p2pkit evaluate`` translates through the same
  [`translate_tensor`][p2pkit.inference.translate_tensor].

None of these functions change the generator's train/eval mode: wrap them in
[`inference_protocol`][p2pkit.models.protocol.inference_protocol].
"""

from __future__ import annotations

from p2pkit.inference.files import (
    TRIPLETS_DIR,
    check_inputs,
    expand_inputs,
    input_reader,
    output_names,
    plan_outputs,
    read_input,
)
from p2pkit.inference.model import WEIGHTS, TrainedModel, load_trained
from p2pkit.inference.pipeline import (
    AUTO_BATCH_PIXELS,
    AUTO_MAX_BATCH,
    WriteBehind,
    auto_batch_size,
    translate_files,
)
from p2pkit.inference.tensors import (
    crop_padding,
    iter_batches,
    pad_to_multiple,
    translate_images,
    translate_tensor,
)

__all__ = [
    "AUTO_BATCH_PIXELS",
    "AUTO_MAX_BATCH",
    "TRIPLETS_DIR",
    "WEIGHTS",
    "TrainedModel",
    "WriteBehind",
    "auto_batch_size",
    "check_inputs",
    "crop_padding",
    "expand_inputs",
    "input_reader",
    "iter_batches",
    "load_trained",
    "output_names",
    "pad_to_multiple",
    "plan_outputs",
    "read_input",
    "translate_files",
    "translate_images",
    "translate_tensor",
]
