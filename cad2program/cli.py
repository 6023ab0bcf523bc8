"""The `cad2program` command: a thin layer of argument parsing over the library."""

from __future__ import annotations

import argparse
import sys

from cad2program import __version__
from cad2program.errors import UserError
from cad2program.contract.program import ProgramError
from cad2program.contract.tokenizer import TokenizerError
from cad2program.commands import bench, check, evaluate, export, generate, import_dxf, predict, render, serve, train

# name -> module; each module has a docstring (the command's help), add_arguments and run.
COMMANDS = {
    "bench": bench,
    "generate": generate,
    "check": check,
    "import-dxf": import_dxf,
    "render": render,
    "train": train,
    "serve": serve,
    "predict": predict,
    "eval": evaluate,
    "export": export,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cad2program",
        description="Read technical drawings (CAD output, scans, photos of sketches) into programs of "
                    "geometric primitives: lines, rectangles, circles, arcs and polylines, with their sizes "
                    "read from the dimension annotations.",
        epilog="Run 'cad2program COMMAND --help' for the options of one command.")
    parser.add_argument("--version", action="version", version=f"cad2program {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        doc = (module.__doc__ or "").strip()
        command_parser = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                                        formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command_parser)
        command_parser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except (UserError, ProgramError, TokenizerError, FileNotFoundError, NotADirectoryError,
            IsADirectoryError, PermissionError) as err:
        print(f"cad2program {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a disk full, a read-only file system: what the system said, not a traceback
        print(f"cad2program {args.command}: error: {err.strerror or err}"
              + (f": {err.filename}" if err.filename else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cad2program {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
