"""Importing mechscope is cheap and has no side effects (STYLE.md 9)."""

import subprocess
import sys


def test_import_does_not_load_torch_or_transformers():
    code = "import sys, mechscope, mechscope.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_public_names():
    import mechscope
    from mechscope.interventions import Add, Clamp  # noqa: F401

    assert callable(mechscope.load) and mechscope.interventions.Clamp is Clamp


def test_building_the_cli_parser_does_not_load_torch():
    """``mechscope <any command> --help`` stays instant: every command's flags come from torch-free configs."""
    code = "import sys; from mechscope.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
