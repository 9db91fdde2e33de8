"""p2pkit: image-to-image translation with conditional adversarial networks.

The method of Isola, Zhu, Zhou and Efros, "Image-to-Image Translation with
Conditional Adversarial Networks" (CVPR 2017, arXiv 1611.07004, "pix2pix").

Importing p2pkit is cheap: it imports neither torch nor any plugin. Components are
built by name from the registries::

    import p2pkit
    G = p2pkit.create_generator("unet_256")
    D = p2pkit.create_discriminator("patchgan_70")
    objective = p2pkit.create_objective("l1_cgan")

The names a plugin or a library user may rely on are listed, with the stability policy, on
the documentation's *Public API* page; ``PLUGIN_API_VERSION`` is their version, and a plugin
requires one with ``p2pkit.require_api("1")``.
"""

from p2pkit.api_version import PLUGIN_API_VERSION, require_api
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
    "PLUGIN_API_VERSION",
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
    "require_api",
]
