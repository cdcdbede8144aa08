"""Plugins that shadow each other or fail: one line naming the plugin, exit 2 (issue 14,
items 6 and 9).

Third-party distributions are real: a ``*.dist-info`` folder with an
``entry_points.txt`` in a temporary folder put on ``sys.path``, which
``importlib.metadata`` (and so pluggy) finds like any installed package.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness import plugins
from harness.cli import main
from harness.errors import InputError
from harness.plugins import create_manager

FIXTURES = Path(__file__).parents[1] / "fixture_plugins"

SUITE = """
[suite]
name = "hooks"
trials = 2

[[problems]]
name = "single_neuron"
d = [3, 4]
n = 10

[[initializers]]
name = "zero"

[[solvers]]
name = "altmin"
max_iter = 2

[metrics]
names = ["param_error"]
"""


@pytest.fixture(autouse=True)
def fresh_registries(monkeypatch):
    """Each test builds its registry: a cached one would hide the plugins it installs."""
    monkeypatch.setattr(plugins, "_CACHE", {})


def install(site: Path, dist: str, entry_points: dict[str, str], module_source: str) -> None:
    """A distribution ``dist`` 1.0 in ``site`` whose ``relubench`` entry points name its
    module ``<dist>_plugin``."""
    module = f"{dist}_plugin"
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[relubench]\n{lines}")


EMPTY_PLUGIN = """
from harness import hookimpl


@hookimpl
def relubench_solvers():
    return []
"""


def list_components(capsys, *args: str) -> tuple[int, str]:
    code = main(["list", "solvers", *args])
    return code, capsys.readouterr().err


def test_a_third_party_common_is_an_error_naming_both_distributions(tmp_path, monkeypatch, capsys):
    install(tmp_path, "shadowco", {"common": "shadowco_plugin"}, EMPTY_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = list_components(capsys)
    assert code == 2, err
    assert err.startswith("relubench: error: plugin name 'common' is registered twice")
    assert "distribution relubench==" in err and "(plugins.common)" in err
    assert "distribution shadowco==1.0 (shadowco_plugin)" in err
    assert len(err.strip().splitlines()) == 1


def test_two_distributions_with_one_entry_point_name_are_an_error(tmp_path, monkeypatch, capsys):
    install(tmp_path, "alpha", {"extras": "alpha_plugin"}, EMPTY_PLUGIN)
    install(tmp_path, "beta", {"extras": "beta_plugin"}, EMPTY_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError) as info:
        create_manager()
    message = str(info.value)
    assert "'extras' is registered twice" in message
    assert "alpha==1.0" in message and "beta==1.0" in message
    # Blocking the name blocks both, and nothing is ambiguous any more.
    registry = create_manager(blocked=["extras"])
    assert "altmin" in registry.components["solver"]


def test_an_installed_plugin_that_exits_at_import_is_named(tmp_path, monkeypatch, capsys):
    install(tmp_path, "quitter", {"quitter": "quitter_plugin"}, "import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, err = list_components(capsys)
    assert code == 2, err
    assert "plugin 'quitter' (quitter_plugin, distribution quitter==1.0)" in err
    assert "SystemExit: the module called sys.exit(3) at import" in err


@pytest.mark.parametrize(
    ("plugin", "cause"),
    [
        ("exit_at_import.py", "SystemExit: the module called sys.exit(4) at import"),
        ("interrupt_at_import.py", "KeyboardInterrupt"),
    ],
)
def test_a_plugin_file_that_exits_or_interrupts_at_import_is_exit_2(plugin, cause, capsys):
    path = FIXTURES / plugin
    code, err = list_components(capsys, "--plugin", str(path))
    assert code == 2, err
    assert err.strip() == f"relubench: error: --plugin {path}: import failed: {cause}"


def test_a_component_hook_that_raises_is_named(monkeypatch, capsys):
    monkeypatch.setenv("RAISING_HOOKS_SOLVERS", "1")
    code, err = list_components(capsys, "--plugin", str(FIXTURES / "raising_hooks.py"))
    assert code == 2, err
    assert err.strip() == (
        "relubench: error: plugin 'raising_hooks': hook relubench_solvers raised "
        "ValueError: cannot list my solvers today"
    )


def test_a_lifecycle_hook_that_raises_mid_run_is_named(tmp_path, capsys):
    suite = tmp_path / "hooks.toml"
    suite.write_text(SUITE)
    plugin = str(FIXTURES / "raising_hooks.py")
    args = ["run", str(suite), "--plugin", plugin, "--executor", "serial", "--no-progress"]
    code = main([*args, "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.strip() == (
        "relubench: error: plugin 'raising_hooks': hook relubench_cell_done raised "
        "RuntimeError: cell_done hook failed on purpose (2 rows)"
    )
    # The unit that finished before the hook raised is stored.
    assert list((tmp_path / "r" / "hooks" / "runs").glob("part-*.parquet"))


def test_params_that_are_not_a_dataclass_are_refused_at_registration(capsys):
    code, err = list_components(capsys, "--plugin", str(FIXTURES / "not_dataclass_params.py"))
    assert code == 2, err
    assert "plugin 'not_dataclass_params': solver 'plain'" in err
    assert "Params is <class 'relubench_plugin_not_dataclass_params.PlainParams'>" in err
    assert "not a dataclass" in err
