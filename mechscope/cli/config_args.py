"""Command-line flags made from a config dataclass, so each default lives in one place.

A frozen config dataclass (STYLE.md 6) is the Python API, the saved ``config.json`` and the CLI at once:
:func:`add_config_args` turns each field into a flag (``seq_len`` → ``--seq-len``) whose help is the
field's docstring and whose default is the dataclass's own, with ``Literal`` fields as choices, ``bool``
fields as ``--x/--no-x`` and ``tuple[str, ...]`` fields as repeatable flags; a nested config dataclass
adds its fields too. :func:`config_from_args` builds the config from the flags the user gave; the
rest keep the dataclass defaults, and ``__post_init__`` validates as for any caller.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import textwrap
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal right under it), whitespace collapsed."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr)
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):  # fmt: skip
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _flag(name: str, rename: Mapping[str, str]) -> str:
    return rename.get(name, "--" + name.replace("_", "-"))


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def add_config_args(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *, skip: tuple[str, ...] = (),
                    rename: Mapping[str, str] | None = None, help: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """Add one flag per field of ``cls`` (recursing into nested config dataclasses).

    skip: fields left out (set by the command itself). rename: field → flag, e.g. ``{"sources": "--corpus"}``.
    help: field → help text replacing the docstring. Flags absent from the command line stay absent from
    the namespace, so :func:`config_from_args` leaves those fields to the dataclass.
    """
    rename, help = dict(rename or {}), dict(help or {})
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, default = hints[f.name], _default(f)
        if dataclasses.is_dataclass(tp):
            add_config_args(parser, tp, skip=skip, rename=rename, help=help)
            continue
        text = help.get(f.name, docs.get(f.name, "")).replace("%", "%%")
        kw: dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
            inner = next(a for a in args if a is not type(None))
            if inner not in (int, float, str):
                raise TypeError(f"{cls.__name__}.{f.name}: no flag for type {tp!r}")
            kw.update(type=_optional(inner), metavar=inner.__name__.upper())
        elif tp is bool:
            kw.update(action=argparse.BooleanOptionalAction)
        elif origin is Literal:
            kw.update(choices=args, type=type(args[0]))
        elif origin is tuple:
            kw.update(action="append", type=args[0], metavar=f.name.upper().rstrip("S") or "VALUE")
        elif tp in (int, float, str):
            kw.update(type=tp)
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no flag for type {tp!r}")
        shown = ", ".join(map(str, default)) if isinstance(default, tuple) else default
        kw["help"] = f"{text} (default: {shown})" if default is not dataclasses.MISSING else text
        parser.add_argument(_flag(f.name, rename), **kw)


def _optional(tp: type):
    """An argparse type for ``tp | None``: ``none`` (any case) gives None."""

    def convert(text: str):
        if text.strip().lower() == "none":
            return None
        try:
            return tp(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {tp.__name__} or 'none', got {text!r}") from None

    convert.__name__ = tp.__name__
    return convert


def config_from_args(cls: type, args: argparse.Namespace, base: Any = None, **overrides: Any):
    """Build ``cls`` from the flags given (nested configs too); ``overrides`` win over flags. Fields
    without a flag keep ``base``'s values (for a nested config: the outer field's default instance)."""
    given = vars(args)
    hints = typing.get_type_hints(cls)
    kw: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in overrides:
            kw[f.name] = overrides[f.name]
        elif dataclasses.is_dataclass(hints[f.name]):
            inner = getattr(base, f.name) if base is not None else _default(f)
            kw[f.name] = config_from_args(hints[f.name], args, None if inner is dataclasses.MISSING else inner)
        elif base is not None and f.name not in given:
            kw[f.name] = getattr(base, f.name)
        elif f.name in given:
            value = given[f.name]
            kw[f.name] = tuple(value) if isinstance(value, list) else value
    return cls(**kw)
