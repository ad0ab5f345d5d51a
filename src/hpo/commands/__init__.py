"""`hpo` subcommands, one module each. A module has ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; list it in ``COMMAND_MODULES``."""

COMMAND_MODULES = [
    "hpo.commands.sweep",
    "hpo.commands.predict",
    "hpo.commands.report",
    "hpo.commands.check_data",
    "hpo.commands.resume",
    "hpo.commands.submit",
    "hpo.commands.status",
    "hpo.commands.compare",
    "hpo.commands.logs",
]
