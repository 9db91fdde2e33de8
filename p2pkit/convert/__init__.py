"""Converters that bring generators trained by other code into p2pkit run folders.

[`p2pkit.convert.authors`][p2pkit.convert.authors] reads the generators saved by the pix2pix
authors' PyTorch code (``p2pkit import authors``). A converted run folder holds only a
generator ([`GENERATOR_ONLY`][p2pkit.engine.build.GENERATOR_ONLY]) and is read like any run by
``translate`` and ``evaluate``.
"""
