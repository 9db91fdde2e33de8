"""p2pkit: image-to-image translation with conditional adversarial networks.

The method of Isola, Zhu, Zhou and Efros, "Image-to-Image Translation with
Conditional Adversarial Networks" (CVPR 2017, arXiv 1611.07004, "pix2pix").

Importing p2pkit is cheap: it imports neither torch nor any plugin. Components are
built by name from the registries::

    import p2pkit
    G = p2pkit.create_generator("unet_256")
    D = p2pkit.create_discriminator("patchgan_70")
    objective = p2pkit.create_objective("l1_cgan")
"""

from p2pkit.errors import P2PKitError
from p2pkit.registry import (
    component_spec,
    create_dataset,
    create_discriminator,
    create_generator,
    create_objective,
    create_task,
    get_registry,
    list_datasets,
    list_discriminators,
    list_generators,
    list_objectives,
    list_tasks,
    register_dataset,
    register_discriminator,
    register_generator,
    register_metric,
    register_objective,
    register_task,
)

__version__ = "0.1.0"

__all__ = [
    "P2PKitError",
    "__version__",
    "component_spec",
    "create_dataset",
    "create_discriminator",
    "create_generator",
    "create_objective",
    "create_task",
    "get_registry",
    "list_datasets",
    "list_discriminators",
    "list_generators",
    "list_objectives",
    "list_tasks",
    "register_dataset",
    "register_discriminator",
    "register_generator",
    "register_metric",
    "register_objective",
    "register_task",
]
