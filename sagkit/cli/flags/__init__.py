"""Each subcommand's flags, one module a subcommand: ``add(sub)`` adds its parser and names its handler (a key of
``sagkit.cli.parser.HANDLERS``). Torch-free, so that ``--help`` and argument errors are fast."""
