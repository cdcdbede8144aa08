"""The plugin manager: entry points, ``--plugin`` files and modules, blocking, the registry.

Built-in plugins are listed as ``relubench`` entry points of this very
distribution, so they load through the same path as a third party's. A
``--plugin`` value is a path to a ``.py`` file or an importable module name;
``-p no:NAME`` blocks the plugin registered as NAME (an entry-point name or a
module name).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from harness import hookspecs
from harness.components import KINDS, Component
from harness.errors import InputError, did_you_mean

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
    _distribution: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    def get(self, kind: str, name: str, *, where: str = "") -> type[Component]:
        """The class registered as ``name``; an :class:`InputError` listing what exists if none."""
        table = self.components.get(kind, {})
        if name not in table:
            known = ", ".join(sorted(table)) or "none"
            prefix = f"{where}: " if where else ""
            raise InputError(
                f"{prefix}unknown {kind} {name!r}{did_you_mean(name, table)}; "
                f"registered {kind}s: {known}"
            )
        return table[name]

    def plugin_of(self, kind: str, name: str) -> str:
        return self.origin[(kind, name)]

    def distribution_of(self, kind: str, name: str) -> str:
        """``dist==version`` of the installed distribution whose entry point registered the
        component; empty for ``--plugin`` files and modules. Taken from the entry points
        loaded, so it does not depend on ``sys.path`` or the working directory."""
        key = (kind, name)
        if key not in self._distribution:  # each lookup parses the dist's metadata: 3 ms
            plugin = self.manager.get_plugin(self.origin[key])
            self._distribution[key] = next(
                (
                    f"{dist.project_name}=={dist.version}"
                    for obj, dist in self.manager.list_plugin_distinfo()
                    if obj is plugin
                ),
                "",
            )
        return self._distribution[key]

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
        except IMPORT_FAILURES as exc:
            sys.modules.pop(name, None)
            raise InputError(f"--plugin {spec}: import failed: {_cause(exc)}") from exc
        return stem, module
    try:
        module = importlib.import_module(spec)
    except IMPORT_FAILURES as exc:
        raise InputError(f"--plugin {spec}: import failed: {_cause(exc)}") from exc
    return spec, module


IMPORT_FAILURES = (Exception, SystemExit, KeyboardInterrupt)
"""What a plugin's import may raise and still be reported as that plugin's fault: a
module that calls ``sys.exit`` or raises ``KeyboardInterrupt`` at import too."""


def _cause(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: the module called sys.exit({exc.code!r}) at import"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _entry_points(blocked: Iterable[str]) -> list[importlib.metadata.EntryPoint]:
    """The ``relubench`` entry points not blocked; an :class:`InputError` when two
    installed distributions register the same name (one would silently shadow the
    other: a third party's ``common`` would replace, or lose to, the built-in one)."""
    blocked = set(blocked)
    by_name: dict[str, dict[str, importlib.metadata.EntryPoint]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in blocked:
            continue
        dist = _dist_label(ep)
        by_name.setdefault(ep.name, {})[dist] = ep
    for name, dists in sorted(by_name.items()):
        if len(dists) > 1:
            listed = " and ".join(
                f"distribution {d} ({ep.value})" for d, ep in sorted(dists.items())
            )
            raise InputError(
                f"plugin name {name!r} is registered twice, by {listed}; one would shadow "
                f"the other: uninstall one, or block both with -p no:{name}"
            )
    return [ep for dists in by_name.values() for ep in dists.values()]


def _dist_label(ep: importlib.metadata.EntryPoint) -> str:
    dist = ep.dist
    if dist is None:
        return "?"
    return f"{dist.metadata['Name']}=={dist.version}"


def _import_entry_points(eps: Sequence[importlib.metadata.EntryPoint]) -> None:
    """Import every entry point's module before pluggy does, so a failing one is
    reported as that plugin and distribution in one line (pluggy would let the
    exception, even ``SystemExit``, escape with no name)."""
    for ep in eps:
        try:
            ep.load()
        except IMPORT_FAILURES as exc:
            raise InputError(
                f"plugin {ep.name!r} ({ep.value}, distribution {_dist_label(ep)}): import "
                f"failed: {_cause(exc)}"
            ) from exc


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
        _import_entry_points(_entry_points(blocked))
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    plugin_names = []
    for spec in plugins:
        name, module = _import_plugin(spec)
        plugin_names.append(name)
        if pm.is_blocked(name) or pm.is_registered(module):
            continue
        try:
            pm.register(module, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            raise InputError(f"--plugin {spec}: {exc}") from exc
    check_blocked(blocked, [*plugin_names, *(entry_point_names() if entry_points else ())])
    for name, plugin in pm.list_name_plugin():
        check_api_version(name, plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise InputError(f"plugin {exc.plugin!r}: {exc}") from exc
    _name_hook_failures(pm)
    registry = Registry(manager=pm, plugin_specs=tuple(plugins), blocked=blocked)
    for kind, hook_name in HOOKS.items():
        registry.components[kind] = {}
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            for cls in impl.function() or []:
                _add(registry, kind, cls, impl.plugin_name)
    return registry


def entry_point_names() -> list[str]:
    """Names of every installed plugin of the ``relubench`` entry-point group (blocked or not)."""
    return [ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]


def check_blocked(blocked: Iterable[str], known: Iterable[str]) -> None:
    """An :class:`InputError` for a ``-p no:NAME`` that names no plugin (a typo would
    otherwise block nothing, silently), with the closest plugin name."""
    known = sorted(set(known))
    for name in blocked:
        if name not in known:
            raise InputError(
                f"-p no:{name}: no plugin is named {name!r}{did_you_mean(name, known)}; "
                f"plugins: {', '.join(known) or 'none'}"
            )


class PluginHookError(InputError):
    """A plugin's hook implementation raised: the plugin, the hook and the cause."""


def _name_hook_failures(pm: pluggy.PluginManager) -> None:
    """Wrap every hook implementation so that an exception it raises (``sys.exit``
    too) becomes a :class:`PluginHookError` naming the plugin and the hook, which the
    CLI prints as one line, instead of a traceback that names neither."""
    for hook_name in pm.hook.__dict__:
        caller = getattr(pm.hook, hook_name)
        if not hook_name.startswith("relubench_") or not hasattr(caller, "get_hookimpls"):
            continue
        for impl in caller.get_hookimpls():
            if impl.hookwrapper or impl.wrapper or getattr(impl.function, "_named", False):
                continue
            impl.function = _named_call(impl.function, impl.plugin_name, hook_name)


def _named_call(function: Any, plugin: str, hook_name: str) -> Any:
    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except InputError:
            raise
        except (Exception, SystemExit) as exc:
            raise PluginHookError(
                f"plugin {plugin!r}: hook {hook_name} raised {_cause(exc)}"
            ) from exc

    call._named = True  # type: ignore[attr-defined]
    return call


def _add(registry: Registry, kind: str, cls: type[Component], plugin: str) -> None:
    base = KINDS[kind]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise InputError(
            f"plugin {plugin!r} returned {cls!r} from {HOOKS[kind]}, not a {kind} class"
        )
    if not cls.name:
        raise InputError(f"plugin {plugin!r}: {kind} class {cls.__qualname__} has no name")
    where = f"plugin {plugin!r}: {kind} {cls.name!r} ({cls.__module__}.{cls.__qualname__})"
    params = cls.Params
    if not (isinstance(params, type) and dataclasses.is_dataclass(params)):
        raise InputError(
            f"{where}: Params is {params!r}, not a dataclass; declare it with "
            "@dataclass(frozen=True) and harness.param fields"
        )
    try:
        cls.param_specs()
    except Exception as exc:  # e.g. an annotation that names nothing importable
        raise InputError(f"{where}: Params cannot be read: {_cause(exc)}") from exc
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
