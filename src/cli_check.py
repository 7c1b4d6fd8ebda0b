"""The command line, checked before Hydra starts: one line naming the key, exit 2, nothing created.

``train.py``, ``predict.py``, ``evaluate.py``, ``interpret.py`` and ``variant_effect.py`` call
:func:`check_command_line` before their ``hydra.main``. It composes the config the way Hydra will and stops,
with one line and status 2, at

* a group, an option of a group or a config key that does not exist (with the closest valid names),
  where Hydra would print a multi-line error with status 1;
* a key added with ``+``/``++`` that no code reads: one is read when a mapping takes any name
  (:data:`OPEN_MAPPINGS`) or when the nearest ``_target_`` above it accepts it as a keyword argument
  (Lightning's ``Trainer``, a block's constructor); anything else would be silently ignored;
* for ``train.py`` (single runs), a value that cannot work (the checks ``train`` runs before it reads
  data: :func:`src.validate.validate_config`, ``compile``, ``monitor.metric``) and a ``hydra.run.dir``
  that cannot be made (a file in its path, no write permission),

all before Hydra creates the run folder. In a multirun (``-m``) only names are checked: each job's
values are judged by the job and recorded in the sweep ledger. Whatever this check cannot judge
(``--help``, ``--cfg``, ``--config-dir``, an unexpected failure of the check itself) is left to Hydra.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from src.errors import EXIT_USER_ERROR, ConfigError, first_line
from src.utils.signatures import accepts_keyword

APP_DIR = Path(__file__).resolve().parents[1]  # where train.py lives: Hydra's config_path is relative to it
OPEN_MAPPINGS = ("aux_weights",)  # mappings that take any name (the weight of an auxiliary loss by its name)
HYDRA_ONLY_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion", "experimental_rerun", "config_dir")


def check_command_line(config_name: str, argv: list[str] | None = None) -> None:
    """Exit with status 2 and one line on stderr when the command line cannot work (see the module docstring)."""
    try:
        problem = command_line_problem(config_name, sys.argv[1:] if argv is None else argv)
    except Exception:  # the check never stands in the way: Hydra reports what it could not judge
        return
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def command_line_problem(config_name: str, argv: list[str]) -> str | None:
    """The one-line problem of ``argv`` for the app whose primary config is ``config_name``, or None."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit:  # argparse's own usage error: Hydra prints it
        return None
    if any(getattr(args, flag, None) for flag in HYDRA_ONLY_FLAGS):
        return None
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except OverrideParseException as err:
        return first_line(err)
    multirun = bool(args.multirun) or any(o.input_line.replace(" ", "") == "hydra.mode=MULTIRUN" for o in overrides)
    config_dir = Path(args.config_path) if args.config_path else APP_DIR / "conf"
    if not config_dir.is_absolute():
        config_dir = APP_DIR / config_dir
    name = args.config_name or config_name
    user = [o for o in overrides if not _is_hydra(o.key_or_group) and o.package is None and not o.is_delete()]
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        groups = set(_groups(loader))
        chosen: list[str] = []  # group choices of the composition that judges key names
        swept: set[str] = set()
        for o in user:
            if o.key_or_group not in groups:
                continue
            values = _values(o)
            if values is None:  # glob(...), range(...): the sweeper expands them
                swept.add(o.key_or_group)
                continue
            if len(values) > 1:
                swept.add(o.key_or_group)
            for value in values:
                problem = _option_problem(loader, groups, o.key_or_group, value)
                if problem:
                    return problem
            if values and values[0] is not None:
                chosen.append(f"{'+' if o.is_add() else ''}{o.key_or_group}={values[0]}")
        try:
            base = compose(config_name=name, overrides=chosen)
        except Exception as err:  # e.g. a second value for a group of the defaults list
            return None if multirun else first_line(err)
        for o in user:
            key = o.key_or_group
            if key in groups or (multirun and key.split(".")[0] in swept):
                continue
            if _exists(base, key):
                continue
            if not (o.is_add() or o.is_force_add()):
                return f"{key}: no such config key or group{_closest(key, base, groups)}"
            if not _read_by_code(base, key):
                return f"{key}: no code reads this key, so {o.input_line} would be ignored{_closest(key, base, groups)}"
        if multirun:
            return None
        try:
            cfg = compose(config_name=name, overrides=list(args.overrides), return_hydra_config=True)
        except Exception as err:  # a value Hydra cannot apply (e.g. a list into a number)
            return first_line(err)
        return _value_problem(name, cfg)


def _is_hydra(key: str) -> bool:
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def _groups(loader: Any, parent: str = "") -> Iterator[str]:
    for group in loader.list_groups(parent):
        path = f"{parent}/{group}" if parent else group
        if not _is_hydra(path):
            yield path
            yield from _groups(loader, path)


def _values(override: Any) -> list[Any] | None:
    """The option names an override chooses (None for a sweep only the sweeper expands)."""
    if not override.is_sweep_override():
        value = override.value()
        return [None if value is None else str(value)]
    try:
        return list(override.sweep_string_iterator())
    except Exception:
        return None


def _option_problem(loader: Any, groups: set[str], group: str, value: str | None) -> str | None:
    if value is None:
        return None
    folder, _, option = value.rpartition("/")
    where = f"{group}/{folder}" if folder else group
    options = loader.get_group_options(where) if where in groups else []
    if option in options:
        return None
    names = sorted(f"{folder}/{name}" if folder else name for name in options)
    close = difflib.get_close_matches(value, names, n=3, cutoff=0.5)
    hint = f"closest: {', '.join(close)}; " if close else ""
    return f"{group}={value}: no such {group} option ({hint}options: {', '.join(names)})"


def _child(node: Any, part: str) -> Any:
    """The child config node ``part`` of ``node`` without resolving interpolations (a sentinel when absent)."""
    if isinstance(node, DictConfig) and part in node.keys():  # noqa: SIM118 (`in node` resolves the value)
        return node._get_node(part)
    if isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
        return node._get_node(int(part))
    return _ABSENT


_ABSENT = object()


def _exists(cfg: DictConfig, key: str) -> bool:
    node: Any = cfg
    for part in key.split("."):
        node = _child(node, part)
        if node is _ABSENT:
            return False
    return True


def _keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key under ``node`` (values unresolved)."""
    if not isinstance(node, DictConfig):
        return
    for key in node.keys():  # noqa: SIM118 (iterating the node resolves values)
        path = f"{prefix}.{key}" if prefix else str(key)
        yield path
        yield from _keys(node._get_node(key), path)


def _closest(key: str, cfg: DictConfig, groups: set[str]) -> str:
    """``" (closest: a, b)"``: the existing names most like ``key`` (at its depth, under its existing parent)."""
    parts = key.split(".")
    depth = len(parts)
    candidates = [k for k in _keys(cfg) if k.count(".") == depth - 1 and not _is_hydra(k) and "._" not in f".{k}"]
    if depth == 1:
        candidates += [g for g in groups if "/" not in g]
    parent = ".".join(parts[:-1])
    if parent and _exists(cfg, parent):
        candidates = [k for k in candidates if k.startswith(parent + ".")]
    close = difflib.get_close_matches(key, sorted(set(candidates)), n=3, cutoff=0.6)
    return f" (closest: {', '.join(close)})" if close else ""


def _read_by_code(cfg: DictConfig, key: str) -> bool:
    """Whether an added ``key`` is read: under an open mapping, or a keyword of the nearest ``_target_`` above it."""
    parts = key.split(".")
    if parts[0] in OPEN_MAPPINGS and len(parts) == 2:
        return True
    parent_key = ".".join(parts[:-1])
    if not parent_key or not _exists(cfg, parent_key):
        return False
    parent: Any = cfg
    for part in parts[:-1]:
        parent = _child(parent, part)
    if not isinstance(parent, DictConfig) or "_target_" not in parent.keys():  # noqa: SIM118
        return False
    target = _locate(str(parent._get_node("_target_")._value()))
    return target is not None and accepts_keyword(target, parts[-1])


def _locate(path: str) -> Callable | None:
    from hydra.utils import get_object

    try:
        return get_object(path)
    except Exception:
        return None


def _value_problem(config_name: str, cfg: DictConfig) -> str | None:
    """Values that cannot work and a run folder that cannot be made (``train.py``: the checks before data is read)."""
    if config_name != "train":
        return None
    from src.compilation import compile_backend
    from src.lit_modules.metrics import check_monitor, metric_names, monitor_of
    from src.validate import validate_config

    try:
        validate_config(cfg)
        compile_backend(cfg.get("compile"))
        check_monitor(monitor_of(cfg)[0], metric_names(cfg.final))
    except ConfigError as err:
        return first_line(err)
    return _run_dir_problem(cfg)


def _run_dir_problem(cfg: DictConfig) -> str | None:
    """``hydra.run.dir`` below a regular file, or in a folder this process cannot write: Hydra would fail making it."""
    try:
        run_dir = Path(str(OmegaConf.select(cfg, "hydra.run.dir"))).absolute()
    except Exception:  # an interpolation only Hydra's run resolves: Hydra judges the folder
        return None
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"hydra.run.dir: {existing} is a file, so the run folder {run_dir} cannot be made"
    if existing != run_dir and not os.access(existing, os.W_OK | os.X_OK):
        return f"hydra.run.dir: cannot create {run_dir}: no permission to write in {existing}"
    return None
