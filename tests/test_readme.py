"""README's first commands: right for a CPU-only machine and a CUDA machine, and the
same torch pin that CI (.ci/run) installs."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _quick_start() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def _block_after(section: str, marker: str) -> str:
    """The first ```bash block after the paragraph that starts with ``marker``."""
    rest = section.split(marker, 1)[1]
    return re.search(r"```bash\n(.*?)```", rest, flags=re.S).group(1)


def _pip_installs(command_line: str) -> list[list[str]]:
    """The argument lists of every ``pip install`` in a line of ``&&``-joined commands."""
    out = []
    for part in command_line.split("&&"):
        words = shlex.split(part, comments=True)
        if words[:2] == ["pip", "install"]:
            out.append(words[2:])
    return out


def _torch_install(args_list: list[list[str]]) -> tuple[str, str | None]:
    """(pin, index URL or None) of the pip install that installs torch."""
    for args in args_list:
        pins = [a for a in args if a.startswith("torch")]
        if pins:
            index = args[args.index("--index-url") + 1] if "--index-url" in args else None
            return pins[0], index
    raise AssertionError(f"no torch install in {args_list}")


def _ci_torch() -> tuple[str, str | None]:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    installs = [
        shlex.split(line)[3:]
        for line in lines
        if line.startswith("python -m pip install") and "torch" in line
    ]
    return _torch_install([[a for a in args if a != "--quiet"] for args in installs])


def test_cpu_command_pins_the_cpu_build_and_matches_ci():
    section = _quick_start()
    block = _block_after(section, "**CPU-only machine")
    first = block.strip().splitlines()[0]
    installs = _pip_installs(first)
    pin, index = _torch_install(installs)
    assert index == CPU_INDEX
    # torch first, from the CPU index, then the project: pip then finds torch satisfied
    assert installs[0][0] == pin and installs[1][:2] == ["-e", ".[test]"]
    assert "relubench run suites/quickstart.toml" in first
    # CI's machines resolve the same pin to the CPU build from their own package mirror
    # (the CPU index is not reachable there), so CI shares the pin, not the index.
    assert pin == _ci_torch()[0]
    assert "200 MB" in section.split("**CPU-only machine", 1)[1].split("```", 1)[0]


def test_cuda_command_uses_the_default_wheels_with_the_same_pin():
    section = _quick_start()
    block = _block_after(section, "**CUDA machine")
    pin, index = _torch_install(_pip_installs(block.strip().splitlines()[0]))
    assert index is None  # PyPI's Linux wheels are the CUDA builds
    assert pin == _ci_torch()[0]
    said = section.split("**CUDA machine", 1)[1].split("```", 1)[0]
    assert "several GB" in said and "nvidia" in said
    assert "**macOS" in section


def test_the_pin_satisfies_the_projects_torch_requirement():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (req,) = [Requirement(r) for r in project["dependencies"] if r.startswith("torch")]
    version = _ci_torch()[0].split("==", 1)[1]
    assert req.specifier.contains(version)
