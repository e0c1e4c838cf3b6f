"""The ``mechscope`` command line: one subcommand per analysis.

Each subcommand lives in its own module exposing ``register(subparsers)``; the module sets
``func`` on its parser. Heavy imports happen inside those functions, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from mechscope.errors import MechscopeError

# Subcommand modules, in the order --help lists them.
COMMANDS = ("info", "check", "run", "tour", "lens", "grok", "dla", "patch", "trace", "top-examples", "toy", "sae", "steer", "vector",
            "finetune", "diff", "serve")


DEFAULT_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {}
"""command -> (default action, all actions), for commands whose module sets ``DEFAULT_ACTION``:
``mechscope lens PROMPT`` runs ``mechscope lens read PROMPT``."""


class OneLineParser(argparse.ArgumentParser):
    """Reports a bad command line as one line (``mechscope: error: …``, exit 2) instead of the usage
    block; every subcommand's parser is of this class too (argparse makes subparsers of the parent's)."""

    def error(self, message: str):
        self.exit(2, f"mechscope: error: {message} (`{self.prog} --help` shows the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mechscope",
        description="A workbench for mechanistic interpretability. Every command has --help with examples.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n  mechscope info\n  mechscope check --json\n  mechscope tour",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        module_name = f"mechscope.cli.{name.replace('-', '_')}"  # top-examples lives in top_examples.py
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a face that is not installed in this checkout
            if exc.name == module_name:
                continue
            raise
        module.register(subparsers)
        if hasattr(module, "DEFAULT_ACTION"):
            DEFAULT_ACTIONS[name] = (module.DEFAULT_ACTION, module.ACTIONS)
    return parser


def with_default_action(argv: list[str]) -> list[str]:
    """Insert a command's default action when the word after the command is not one of its actions."""
    if argv and argv[0] in DEFAULT_ACTIONS:
        default, actions = DEFAULT_ACTIONS[argv[0]]
        if len(argv) > 1 and argv[1] not in (*actions, "-h", "--help"):
            return [argv[0], default, *argv[1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("MECHSCOPE_LOG", "WARNING"), format="%(message)s")
    parser = build_parser()
    args = parser.parse_args(with_default_action(list(sys.argv[1:] if argv is None else argv)))
    try:
        result = args.func(args)
    except MechscopeError as exc:
        print(f"mechscope: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mechscope: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print("mechscope: error: out of memory: ask for less (fewer tokens, a smaller batch or model)", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine said no: disk full, permission denied, a vanished file
        if os.environ.get("MECHSCOPE_DEBUG"):
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"mechscope: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: one line, not a traceback; MECHSCOPE_DEBUG=1 shows it
        if os.environ.get("MECHSCOPE_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        print(f"mechscope: internal error: {type(exc).__name__}: {first} (a bug in mechscope: please report it; "
              "MECHSCOPE_DEBUG=1 shows the traceback)", file=sys.stderr)  # fmt: skip
        return 3
    return int(result or 0)
