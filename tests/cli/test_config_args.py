"""CLI flags come from the config dataclasses: every field has a flag, defaults live only in the dataclass."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Literal

import pytest

from mechscope.cli import build_parser, with_default_action
from mechscope.cli.config_args import add_config_args, config_from_args, field_docs
from mechscope.data.corpus import CorpusConfig
from mechscope.errors import ConfigError
from mechscope.lens.config import TunedLensTrainConfig


@dataclasses.dataclass(frozen=True)
class Inner:
    width: int = 3
    """How wide."""


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "x"
    """A name; 50% of a sentence."""
    mode: Literal["a", "b"] = "a"
    """Which mode."""
    flag: bool = False
    """Turn it on."""
    items: tuple[str, ...] = ("p",)
    """Repeatable."""
    rate: float = 0.5
    inner: Inner = dataclasses.field(default_factory=Inner)
    """Nested."""


def parse(cls, argv, **kw):
    p = argparse.ArgumentParser()
    add_config_args(p, cls, **kw)
    return p.parse_args(argv)


def test_flags_types_and_defaults_come_from_the_dataclass():
    assert field_docs(Outer)["name"] == "A name; 50% of a sentence."
    assert config_from_args(Outer, parse(Outer, [])) == Outer()
    got = config_from_args(Outer, parse(Outer, ["--name", "y", "--mode", "b", "--flag", "--items", "q", "--items", "r",
                                                "--rate", "2", "--width", "7"]))  # fmt: skip
    assert got == Outer("y", "b", True, ("q", "r"), 2.0, Inner(7))
    with pytest.raises(SystemExit):
        parse(Outer, ["--mode", "c"])
    assert config_from_args(Outer, parse(Outer, ["--name", "y"]), name="z").name == "z"


def test_every_tuned_lens_field_is_a_flag_with_its_default(capsys):
    parser = build_parser()
    args = parser.parse_args(["lens", "train-tuned"])
    assert config_from_args(TunedLensTrainConfig, args) == TunedLensTrainConfig()
    with pytest.raises(SystemExit):
        parser.parse_args(["lens", "train-tuned", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(TunedLensTrainConfig):
        if f.name != "corpus":
            assert f"--{f.name.replace('_', '-')}" in help_text, f.name
    assert f"(default: {TunedLensTrainConfig.tokens})" in help_text
    for f in dataclasses.fields(CorpusConfig):
        assert ("--corpus" if f.name == "sources" else f"--{f.name.replace('_', '-')}") in help_text
    args = parser.parse_args(["lens", "train-tuned", "--corpus", "a.txt", "--corpus", "builtin", "--seq-len", "64",
                              "--lr", "0.01", "--no-sublayers"])  # fmt: skip
    cfg = config_from_args(TunedLensTrainConfig, args)
    assert cfg.corpus == CorpusConfig(("a.txt", "builtin"), 64) and cfg.lr == 0.01 and not cfg.sublayers
    with pytest.raises(ConfigError, match="lr"):
        config_from_args(TunedLensTrainConfig, parser.parse_args(["lens", "train-tuned", "--lr", "-1"]))


def test_lens_prompt_is_the_read_action():
    build_parser()
    assert with_default_action(["lens", "The capital"]) == ["lens", "read", "The capital"]
    assert with_default_action(["lens", "--model", "m", "x"]) == ["lens", "read", "--model", "m", "x"]
    for argv in (["lens", "train-tuned"], ["lens", "read", "x"], ["lens", "--help"], ["run", "x"]):
        assert with_default_action(argv) == argv


def test_a_nested_config_keeps_the_outer_fields_default():
    @dataclasses.dataclass(frozen=True)
    class Wrapper:
        inner: Inner = dataclasses.field(default_factory=lambda: Inner(width=9))
        """Nested, with its own default."""

    assert config_from_args(Wrapper, parse(Wrapper, [])).inner.width == 9
    assert config_from_args(Wrapper, parse(Wrapper, ["--width", "2"])).inner.width == 2
