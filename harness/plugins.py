"""The plugin manager: entry points, ``--plugin`` files and modules, blocking, the registry.

Built-in plugins are listed as ``relubench`` entry points of this very
distribution, so they load through the same path as a third party's. A
``--plugin`` value is a path to a ``.py`` file or an importable module name;
``-p no:NAME`` blocks the plugin registered as NAME (an entry-point name or a
module name).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from harness import hookspecs
from harness.components import KINDS, Component
from harness.errors import InputError

ENTRY_POINT_GROUP = "relubench"
HOOKS = {
    "problem": "relubench_problems",
    "initializer": "relubench_initializers",
    "solver": "relubench_solvers",
    "metric": "relubench_metrics",
}


@dataclass
class Registry:
    """Every registered component class by kind and name, and which plugin gave it."""

    manager: pluggy.PluginManager
    components: dict[str, dict[str, type[Component]]] = field(default_factory=dict)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)
    plugin_specs: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()

    def get(self, kind: str, name: str, *, where: str = "") -> type[Component]:
        """The class registered as ``name``; an :class:`InputError` listing what exists if none."""
        table = self.components.get(kind, {})
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            prefix = f"{where}: " if where else ""
            raise InputError(f"{prefix}unknown {kind} {name!r}; registered {kind}s: {known}")
        return table[name]

    def plugin_of(self, kind: str, name: str) -> str:
        return self.origin[(kind, name)]

    def distribution_of(self, kind: str, name: str) -> str:
        """``dist==version`` of the installed distribution whose entry point registered the
        component; empty for ``--plugin`` files and modules. Taken from the entry points
        loaded, so it does not depend on ``sys.path`` or the working directory."""
        plugin = self.manager.get_plugin(self.origin[(kind, name)])
        for obj, dist in self.manager.list_plugin_distinfo():
            if obj is plugin:
                return f"{dist.project_name}=={dist.version}"
        return ""

    def distributions(self) -> dict[str, str]:
        """Plugin name -> distribution==version, for provenance."""
        out = {}
        for plugin_name, dist in self.manager.list_plugin_distinfo():
            name = self.manager.get_name(plugin_name) or str(plugin_name)
            out[name] = f"{dist.project_name}=={dist.version}"
        return out


def file_plugin_name(path: Path) -> str:
    """The plugin name of a ``--plugin`` file: its stem, or its folder's name for a
    package's ``__init__.py`` (like the package itself)."""
    return path.resolve().parent.name if path.stem == "__init__" else path.stem


def _import_plugin(spec: str) -> tuple[str, Any]:
    """Import a ``--plugin`` value: a path to a .py file, or a module name."""
    path = Path(spec)
    if spec.endswith(".py") or path.is_file():
        if not path.is_file():
            raise InputError(f"--plugin {spec}: no such file")
        stem = file_plugin_name(path)
        name = f"relubench_plugin_{stem}"
        mod_spec = importlib.util.spec_from_file_location(name, path.resolve())
        if mod_spec is None or mod_spec.loader is None:
            raise InputError(f"--plugin {spec}: cannot import this file")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise InputError(
                f"--plugin {spec}: import failed: {type(exc).__name__}: {exc}"
            ) from exc
        return stem, module
    try:
        module = importlib.import_module(spec)
    except Exception as exc:
        raise InputError(f"--plugin {spec}: import failed: {type(exc).__name__}: {exc}") from exc
    return spec, module


def check_api_version(name: str, module: Any) -> None:
    """Refuse a plugin that declares a newer plugin API than this harness supports.

    A plugin may declare ``RELUBENCH_PLUGIN_API = "MAJOR.MINOR"`` (the version of the
    API it was written for, :data:`harness.PLUGIN_API_VERSION`); minor versions only add.
    """
    from harness import PLUGIN_API_VERSION

    declared = getattr(module, "RELUBENCH_PLUGIN_API", None)
    if declared is None:
        return
    where = f"plugin {name!r} ({getattr(module, '__name__', module)})"
    supported = ".".join(map(str, PLUGIN_API_VERSION))
    try:
        version = tuple(int(part) for part in str(declared).split("."))
        if len(version) != 2:
            raise ValueError
    except ValueError:
        raise InputError(
            f"{where}: RELUBENCH_PLUGIN_API = {declared!r} is not a version like {supported!r}"
        ) from None
    if version[0] != PLUGIN_API_VERSION[0] or version[1] > PLUGIN_API_VERSION[1]:
        from harness import __version__

        raise InputError(
            f"{where} needs relubench plugin API {declared}; this relubench ({__version__}) "
            f"provides plugin API {supported}: upgrade relubench, or use a version of the "
            f"plugin written for API {supported}, or block it with -p no:{name}"
        )


def create_manager(
    plugins: Sequence[str] = (), blocked: Iterable[str] = (), *, entry_points: bool = True
) -> Registry:
    """Build the plugin manager and collect every component.

    :param plugins: ``--plugin`` values (paths to .py files or module names).
    :param blocked: plugin names to block (``-p no:NAME`` gives ``NAME``).
    :param entry_points: load the ``relubench`` entry-point group (the built-ins too).
    """
    pm = pluggy.PluginManager("relubench")
    pm.add_hookspecs(hookspecs)
    blocked = tuple(blocked)
    for name in blocked:
        pm.set_blocked(name)
    if entry_points:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for spec in plugins:
        name, module = _import_plugin(spec)
        if pm.is_blocked(name) or pm.is_registered(module):
            continue
        try:
            pm.register(module, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise InputError(f"--plugin {spec}: {exc}") from exc
    for name, plugin in pm.list_name_plugin():
        check_api_version(name, plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise InputError(f"plugin {exc.plugin!r}: {exc}") from exc
    registry = Registry(manager=pm, plugin_specs=tuple(plugins), blocked=blocked)
    for kind, hook_name in HOOKS.items():
        registry.components[kind] = {}
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            for cls in impl.function() or []:
                _add(registry, kind, cls, impl.plugin_name)
    return registry


def _add(registry: Registry, kind: str, cls: type[Component], plugin: str) -> None:
    base = KINDS[kind]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise InputError(
            f"plugin {plugin!r} returned {cls!r} from {HOOKS[kind]}, not a {kind} class"
        )
    if not cls.name:
        raise InputError(f"plugin {plugin!r}: {kind} class {cls.__qualname__} has no name")
    table = registry.components[kind]
    if cls.name in table and table[cls.name] is not cls:
        first = registry.origin[(kind, cls.name)]
        raise InputError(
            f"{kind} {cls.name!r} is registered twice: by plugin {first!r} and by plugin {plugin!r}"
        )
    table[cls.name] = cls
    registry.origin[(kind, cls.name)] = plugin


_CACHE: dict[tuple[tuple[str, ...], tuple[str, ...]], Registry] = {}


def get_registry(plugins: Sequence[str] = (), blocked: Iterable[str] = ()) -> Registry:
    """A cached registry for these plugin options (workers call this once per process)."""
    key = (tuple(plugins), tuple(blocked))
    if key not in _CACHE:
        _CACHE[key] = create_manager(plugins, blocked)
    return _CACHE[key]
