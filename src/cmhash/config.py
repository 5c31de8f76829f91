"""Method configs in one place: defaults, merging, the override dialect, profiles, search spaces.

Defaults live in ``methods/configs/<method>.yaml`` (deep methods also get ``_train.yaml`` under
``train``). A YAML may end with a ``search:`` section (the method's hyperparameter search space
for ``cmhash tune``); it is not part of the config.

**The override dialect** (``cmhash train``, ``bench`` and ``tune`` alike): ``--set KEY=VALUE`` with a
dotted KEY, the value parsed as YAML.

- ``--set dcmh.hidden=32``: *scoped*, the first part names a method; applies to that method only.
- ``--set hidden=32``: *unscoped*; applies to every selected method whose config has the key
  (in ``train`` / ``tune`` that is the one method). A key no selected method has is an error.
- ``--config FILE``: a YAML of the same: top-level method names are scoped sections, any other
  key is unscoped; applied first, then each ``--set`` in order (later wins).
- ``--profile NAME`` (train, bench): a shipped profile (``methods/profiles/<family>/<method>.yaml``,
  see :func:`load_profile`) applied before ``--config`` and ``--set``.

Search spaces (``search:``, keys are dotted config paths): ``{float: [lo, hi], log: true}``,
``{int: [lo, hi], log: false, step: 1}`` or ``{choice: [a, b, ...]}``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from cmhash.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "methods" / "configs"
PROFILE_DIR = Path(__file__).parent / "methods" / "profiles"
TRAIN_DEFAULTS = "_train"
SEARCH_KEY = "search"

Override = tuple[str, Any]  # (dotted key, value), possibly scoped by a method name


# ---- files ----------------------------------------------------------------------------------------
def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping (empty file: ``{}``); a missing file or a non-mapping is a named error."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping, got {type(data).__name__}")
    return data


def _config_file(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, search section) of ``methods/configs/<name>.yaml``; both empty when there is none."""
    path = CONFIG_DIR / f"{name}.yaml"
    data = load_yaml(path) if path.exists() else {}
    search = data.pop(SEARCH_KEY, None) or {}
    return data, search


def engine_defaults() -> dict[str, Any]:
    """The training engine's defaults (``_train.yaml``), e.g. the validation fraction every method is tuned on."""
    return _config_file(TRAIN_DEFAULTS)[0]


def method_defaults(name: str, deep: bool) -> dict[str, Any]:
    """A method's default config; deep methods get the engine defaults merged under ``train``."""
    own, _ = _config_file(name)
    if deep:
        own["train"] = merge(engine_defaults(), own.get("train", {}), where=f"{name}.train")
        own.setdefault("losses", {})
        own.setdefault("components", {})
    return own


def method_search_space(name: str, deep: bool) -> dict[str, "SearchParam"]:
    """Dotted key -> parameter: the method's ``search:`` over the engine's (for deep methods)."""
    _, own = _config_file(name)
    spec: dict[str, Any] = {}
    if deep:
        _, train = _config_file(TRAIN_DEFAULTS)
        spec.update({f"train.{k}": v for k, v in train.items()})
    spec.update(own)
    defaults = method_defaults(name, deep)
    space = {}
    for key, value in spec.items():
        if not has_path(defaults, key.split(".")):
            raise ConfigError(f"{name}: search key {key!r} is not a config key")
        space[key] = SearchParam.parse(key, value, where=f"{name}.yaml search")
    return space


# ---- merging ---------------------------------------------------------------------------------------
def merge(defaults: dict[str, Any], overrides: dict[str, Any], where: str, strict: bool = True) -> dict[str, Any]:
    """``defaults`` updated by ``overrides`` (nested dicts merged); with ``strict`` an unknown key is an error."""
    out = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if strict and key not in out:
            raise ConfigError(f"{where}: unknown config key {key!r}; known: {sorted(out)}")
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = merge(out[key], value, where=f"{where}.{key}", strict=strict)
        else:
            out[key] = copy.deepcopy(value)
    return out


def has_path(cfg: Any, path: list[str]) -> bool:
    for p in path:
        if not isinstance(cfg, dict) or p not in cfg:
            return False
        cfg = cfg[p]
    return True


def set_path(cfg: dict[str, Any], path: list[str], value: Any) -> None:
    for p in path[:-1]:
        cfg = cfg.setdefault(p, {})
    cfg[path[-1]] = value


def nest(flat: Iterable[Override] | dict[str, Any]) -> dict[str, Any]:
    """``{"train.epochs": 10}`` to ``{"train": {"epochs": 10}}``."""
    out: dict[str, Any] = {}
    for key, value in (flat.items() if isinstance(flat, dict) else flat):
        set_path(out, key.split("."), value)
    return out


def flatten(tree: dict[str, Any], prefix: str = "") -> list[Override]:
    """Nested mapping to (dotted key, leaf value) pairs; an empty mapping is a leaf."""
    out: list[Override] = []
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            out += flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


# ---- the override dialect ------------------------------------------------------------------------
def parse_set(items: Iterable[str]) -> list[Override]:
    """``["a.b=1", "c=x"]`` to ``[("a.b", 1), ("c", "x")]`` (values parsed as YAML)."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out.append((key.strip(), yaml.safe_load(value)))
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from None
    return out


def gather(config_file: str | None = None, sets: Iterable[str] = ()) -> list[Override]:
    """The overrides of ``--config FILE`` (flattened) then ``--set``, in application order."""
    return (flatten(load_yaml(config_file)) if config_file else []) + parse_set(sets)


def route(overrides: Iterable[Override], defaults: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per-method nested overrides for the methods in ``defaults`` (name -> default config).

    A key whose first part is one of those methods applies to it alone; any other key applies
    to every method whose config has it, and must fit at least one (so typos are caught).
    A scoped key for a method that is not selected is an error too.
    """
    per: dict[str, dict[str, Any]] = {m: {} for m in defaults}
    for key, value in overrides:
        head, _, rest = key.partition(".")
        scoped = head in defaults and rest
        path = (rest if scoped else key).split(".")
        targets = [head] if scoped else list(defaults)
        hit = [m for m in targets if has_path(defaults[m], path)]
        if not hit:
            where = (f"method {head!r} has no" if scoped else f"method {targets[0]!r} has no" if len(targets) == 1
                     else "no selected method has")
            raise ConfigError(f"--set {key}: {where} config key {'.'.join(path)!r}")
        for m in hit:
            set_path(per[m], path, copy.deepcopy(value))
    return per


def resolve(method: str, defaults: dict[str, Any], overrides: Iterable[Override]) -> dict[str, Any]:
    """One method's nested overrides (the ``train`` / ``tune`` case of :func:`route`)."""
    return route(overrides, {method: defaults})[method]


# ---- profiles -----------------------------------------------------------------------------------------
def profile_path(family: str, method: str) -> Path:
    return PROFILE_DIR / family / f"{method}.yaml"


def load_profile(profile: str, family: str, method: str) -> tuple[list[Override], str]:
    """Overrides of a shipped profile and a note on what was used.

    ``profile`` is ``default`` (no overrides) or ``tuned`` (``methods/profiles/<family>/<method>.yaml``,
    as written by ``cmhash tune --save-profile``). A method without a tuned profile for the
    family falls back to its defaults, and the note says so.
    """
    if profile == "default":
        return [], "default"
    if profile != "tuned":
        raise ConfigError(f"unknown profile {profile!r}; known: default, tuned")
    path = profile_path(family, method)
    if not path.exists():
        return [], f"default (no tuned {family} profile)"
    data = load_yaml(path)
    if set(data) == {method}:  # best.yaml form: scoped by the method name
        data = data[method]
    return [(f"{method}.{k}", v) for k, v in flatten(data)], f"tuned ({family})"


def dataset_family(spec: str) -> str:
    """The profile family a dataset spec belongs to: ``wiki``, ``synthetic`` or ``other``."""
    name = spec.partition(":")[0]
    return name if name in ("wiki", "synthetic") else "other"


# ---- search spaces --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchParam:
    """One searched hyperparameter: a float or int range (optionally log) or a set of choices."""

    key: str
    kind: str  # float | int | choice
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: int | None = None
    choices: tuple[Any, ...] = ()

    @classmethod
    def parse(cls, key: str, spec: Any, where: str) -> "SearchParam":
        bad = f"{where}: {key!r} must be {{float: [lo, hi]}}, {{int: [lo, hi]}} or {{choice: [...]}}, got {spec!r}"
        if not isinstance(spec, dict):
            raise ConfigError(bad)
        kinds = [k for k in ("float", "int", "choice") if k in spec]
        extra = set(spec) - {"float", "int", "choice", "log", "step"}
        if len(kinds) != 1 or extra:
            raise ConfigError(bad)
        kind, values = kinds[0], spec[kinds[0]]
        if not isinstance(values, list) or not values:
            raise ConfigError(bad)
        if kind == "choice":
            return cls(key, kind, choices=tuple(values))
        if len(values) != 2 or not values[0] < values[1]:
            raise ConfigError(f"{where}: {key!r} range must be [low, high] with low < high, got {values}")
        if spec.get("log") and values[0] <= 0:
            raise ConfigError(f"{where}: {key!r} log range must be positive, got {values}")
        cast = float if kind == "float" else int
        return cls(key, kind, cast(values[0]), cast(values[1]), bool(spec.get("log", False)),
                   spec.get("step") if kind == "int" else None)

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial proposes for this parameter."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.kind == "choice":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return f"[{self.low}, {self.high}]{' log' if self.log else ''}{' int' if self.kind == 'int' else ''}"
