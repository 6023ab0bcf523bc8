"""One module per subcommand: `add_arguments(parser)` and `run(args) -> exit code`.

Modules import their heavy dependencies (JAX, OpenCV) inside `run`, so `--help` stays instant.
"""
