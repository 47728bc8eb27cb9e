"""Each subcommand's flags, one module a subcommand (found by ``sagkit.cli.parser``, placed by its ``ORDER``):
``add(sub)`` adds its parser and names its handler as ``"module:function"``. Torch-free, so that ``--help`` and
argument errors are fast."""
