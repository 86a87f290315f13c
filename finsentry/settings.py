"""Typed settings composed from one model per room.

Sources, highest priority first: ``FINSENTRY_<SECTION>__<KEY>`` environment variables (pydantic-settings
nested delimiter ``__``), then an optional YAML file (``--config FILE`` or ``FINSENTRY_CONFIG``), then the
defaults. Sections: ``ingest``, ``model``, ``monitor``, ``alerts``. A wrong value stops with
:class:`SettingsError`, whose message names the key and the environment variable. So does a ``FINSENTRY_*``
variable that names no section (``FINSENTRY_BOGUS__X``, ``FINSENTRY_MONITOR_HTTP_PORT`` with one underscore),
unless it is one of :data:`NON_SETTINGS_ENV`, or a key below a single setting (``FINSENTRY_MONITOR__HTTP_PORT__X``),
and an unknown key (the message lists the valid ones). A key of an old layout (``monitor.spike_start_z``, now
``monitor.spike.start_z``) stops with one line naming its new key and variable, from YAML or the environment.

Each service receives only its own sections (``ScorerService.from_settings(s.ingest, s.model)``,
``AggregatorService(s.monitor, ...)``, the spike detector ``s.monitor.spike``); this module only composes them.

In the environment a list or a group of settings is JSON; a list of plain values (``list[str]``, ``list[int]``)
may also be comma-separated (``FINSENTRY_INGEST__SCORER__ALLOWED_LANGS=en,de``). A value that cannot be
decoded stops with a :class:`SettingsError` naming the variable and what to write, and so does a config file
nested absurdly deep or (through YAML aliases) absurdly large.
"""

from __future__ import annotations

import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic_settings
import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from finsentry.alerts.settings import AlertsSettings
from finsentry.common.mappings import deep_merge
from finsentry.common.textfiles import (
    MAX_CONFIG_BYTES,
    MAX_JSON_DEPTH,
    FileReadError,
    json_problem,
    kind_of,
    read_limited_text,
)
from finsentry.ingest.settings import IngestSettings
from finsentry.model.settings import ModelSettings
from finsentry.monitor.settings import RENAME_NOTES, MonitorSettings

ENV_PREFIX = "FINSENTRY_"

NON_SETTINGS_ENV = frozenset({"FINSENTRY_CONFIG", "FINSENTRY_TEST_MODEL_DIR", "FINSENTRY_SCREENSHOT"})
"""``FINSENTRY_*`` variables that are read outside the settings models and so are not flagged as unknown:
the config file (here), the test suite's model folder (``tests/conftest.py``) and the live test's screenshot
file (``tests/run/test_run_live.py``)."""


MAX_CONFIG_VALUES = 100_000
"""Most values (after YAML aliases are expanded) a config file may hold; settings hold a few hundred."""


class SettingsError(ValueError):
    """A setting is missing, unknown or out of range; the message says which key and how to fix it."""


def _scalar_list_item(annotation: Any) -> type | None:
    """The item type of a ``list[str]`` / ``list[int]`` / ``list[float]`` annotation (also ``... | None``), else
    None: the settings whose environment value may be written comma-separated.

    >>> _scalar_list_item(list[str]), _scalar_list_item(list[int] | None), _scalar_list_item(list[dict])
    (<class 'str'>, <class 'int'>, None)
    """
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) != 1:
            return None
        annotation = options[0]
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (None,)
        if item in (str, int, float):
            return item
    return None


def _comma_list(field: FieldInfo | None, value: str) -> list[str] | None:
    """``en, de`` -> ``["en", "de"]`` for a list-of-scalars setting whose value does not start like JSON."""
    if field is None or _scalar_list_item(field.annotation) is None or value.lstrip()[:1] in ("[", "{", '"'):
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _model_at(path: list[str]) -> Any:
    """The annotation at ``path`` below :class:`Settings` (``[]`` = ``Settings``), or None if a part names no field."""
    model: Any = Settings
    for part in path:
        info = model.model_fields.get(part) if _is_model(model) else None
        if info is None:
            return None
        model = info.annotation
    return model


def _field_at(path: list[str]) -> FieldInfo | None:
    """The settings field at ``path`` (``["ingest", "scorer", "allowed_langs"]``), or None if there is none."""
    parent = _model_at(path[:-1]) if path else None
    return parent.model_fields.get(path[-1]) if _is_model(parent) else None


def _env_value_hint(path: list[str], env: str, error: Exception) -> str:
    """What is wrong with the environment value of the setting at ``path`` and what to write instead."""
    info = _field_at(path)
    why = f"not JSON ({error.msg})" if isinstance(error, json.JSONDecodeError) else f"cannot be read ({error})"
    ann = info.annotation if info is not None else None
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        keys = list(ann.model_fields)
        return (
            f"{why}; {'.'.join(path)} is a group of settings: set each one as {env}__<KEY> "
            f"(keys: {', '.join(keys)}), or give a JSON object such as '{{\"{keys[0]}\": ...}}'"
        )
    example = ""
    if info is not None:
        try:
            default = info.get_default(call_default_factory=True)
            example = json.dumps(TypeAdapter(ann).dump_python(default, mode="json"))
        except Exception:  # an example is a nicety; never fail the error message over it
            example = ""
    item = _scalar_list_item(ann)
    if item is not None:
        sample = "en,de" if item is str else "300,3600"
        return f"{why}; write a JSON list such as '{example or '[...]'}' or comma-separated values such as {sample}"
    return f"{why}; write JSON such as '{example}'" if example else f"{why}; write a JSON value (docs/config.md)"


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, plus: a list-of-scalars setting also takes comma-separated values
    (``FINSENTRY_INGEST__SCORER__ALLOWED_LANGS=en,de``), and a value that cannot be decoded raises
    :class:`SettingsError` naming the variable and what to write (pydantic-settings names only the section)."""

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        """JSON, or (list-of-scalars settings) comma-separated values; ValueError if neither."""
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            items = _comma_list(field, value) if isinstance(value, str) else None
            if items is None:
                raise
            return items

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool) -> Any:
        """As pydantic-settings does; a decoding failure becomes :class:`SettingsError` naming each bad variable."""
        try:
            return super().prepare_field_value(field_name, field, value, value_is_complex)
        except ValueError as exc:
            raise SettingsError("\n".join(self._culprits(field_name, field, value)) or str(exc)) from exc

    def _culprits(self, field_name: str, field: FieldInfo, value: Any) -> list[str]:
        """One message line per environment variable of section ``field_name`` whose value cannot be decoded."""
        delimiter = self.env_nested_delimiter or "__"
        out = []
        for _, env_name, _ in self._extract_field_info(field, field_name):
            if value is not None and env_name in self.env_vars:
                try:
                    self.decode_complex_value(field_name, field, value)
                except ValueError as exc:
                    hint = _env_value_hint([field_name], env_name.upper(), exc)
                    out.append(f"  {field_name} (env {env_name.upper()}): {hint}")
            prefix = f"{env_name}{delimiter}"
            for name, val in self.env_vars.items():
                if not name.startswith(prefix):
                    continue
                try:
                    super().explode_env_vars(field_name, field, {name: val})
                except ValueError as exc:
                    path = [field_name, *name[len(prefix) :].split(delimiter)]
                    hint = _env_value_hint(path, name.upper(), exc)
                    out.append(f"  {'.'.join(path)} (env {name.upper()}): {hint}")
        return out


class Settings(BaseSettings):
    """All of finsentry's settings; see ``docs/config.md`` (generated by ``finsentry config docs``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    ingest: IngestSettings = Field(default_factory=IngestSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)

    @model_validator(mode="after")
    def _skew_below_grace(self) -> Settings:
        """The scorer's event-time pacing must keep partitions closer together than the aggregator's grace."""
        skew, grace = self.ingest.scorer.max_partition_skew_seconds, self.monitor.grace_seconds
        if grace > 0 and skew >= grace:
            raise ValueError(
                f"ingest.scorer.max_partition_skew_seconds ({skew:g} s) must be below monitor.grace_seconds"
                f" ({grace} s): items read that far behind another partition would reach the aggregator late"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        """Keyword arguments over the environment (:class:`_EnvSource`); the config file is layered beneath the
        environment by :func:`load_settings`, which passes the result as keyword arguments."""
        return (init_settings, _EnvSource(settings_cls))


_SECRET_HINTS = ("password", "token", "secret", "key", "url", "credential")


def _describe(err: dict[str, Any]) -> str:
    """One line per error: key, env name, message, and the offending value unless it may hold a secret."""
    raw_loc = list(err.get("loc", ()))
    loc = [str(p) for p in raw_loc]
    key = ".".join(loc)
    named = raw_loc[: next((i for i, p in enumerate(raw_loc) if isinstance(p, int)), len(raw_loc))]  # no list index
    env = ENV_PREFIX + "__".join(str(p).upper() for p in named)
    value = err.get("input")
    secretive = (
        any(h in key.lower() for h in _SECRET_HINTS)
        or isinstance(value, dict | list)
        or err.get("type") == "extra_forbidden"  # an unknown key may be a misspelt secret
    )
    shown = "" if secretive else f" (got {str(value)[:80]!r})"
    msg = err.get("msg")
    if err.get("type") == "renamed_setting":
        return "\n".join(_renamed_line(named, old, new) for old, new in err.get("ctx", {}).get("renamed", ()))
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
        known = _known_keys(loc[:-1])
        if known:
            msg += f"; valid keys of {'.'.join(loc[:-1]) or 'the top level'}: {', '.join(known)}"
    return f"  {key} (env {env}): {msg}{shown}"


def _renamed_line(section: list[Any], old: str, new: str) -> str:
    """One error line for the old key ``old`` of the settings model at ``section``, now ``new`` (dotted, below it).

    >>> print(_renamed_line(["monitor"], "spike_end_z", "spike.end_z").replace("; ", ";\\n"))
      monitor.spike_end_z (env FINSENTRY_MONITOR__SPIKE_END_Z): renamed;
    set monitor.spike.end_z (env FINSENTRY_MONITOR__SPIKE__END_Z)
    """
    old_path = [*map(str, section), old]
    new_path = [*map(str, section), *new.split(".")]
    env_old, env_new = (ENV_PREFIX + "__".join(p.upper() for p in path) for path in (old_path, new_path))
    note = RENAME_NOTES.get(old) if section == ["monitor"] else None
    return f"  {'.'.join(old_path)} (env {env_old}): renamed; set {'.'.join(new_path)} (env {env_new})" + (
        f"; {note}" if note else ""
    )


def _known_keys(section: list[str]) -> list[str]:
    """Field names of the settings model at ``section`` (``[]`` = the top level); empty if it is not a model.

    >>> _known_keys([])
    ['ingest', 'model', 'monitor', 'alerts']
    >>> _known_keys(["ingest", "kafka"])[:2]
    ['bootstrap_servers', 'client_id']
    """
    model = _model_at(section)
    return list(model.model_fields) if _is_model(model) else []


def _unwrap_optional(annotation: Any) -> Any:
    """``X`` for ``X | None`` (one non-None option), else ``annotation`` unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def _single_setting_below(parts: list[str]) -> int | None:
    """How many leading parts of the settings path ``parts`` (lower case) name a single setting that more parts
    follow (``["monitor", "http_port", "x"]`` -> 2), or None when the path does not go on below a single setting.

    Such a path names nothing: pydantic-settings ignores its variable when the setting itself is set, and
    otherwise reports the setting's variable instead. A path through a group of settings is followed; an unknown
    key there is left to validation (which lists the valid keys); a mapping setting takes any key below it.

    >>> _single_setting_below(["monitor", "http_port", "x"])
    2
    >>> _single_setting_below(["ingest", "kafka", "client_id"]), _single_setting_below(["monitor", "bogus", "x"])
    (None, None)
    """
    model: Any = Settings
    for depth, part in enumerate(parts):
        model = _unwrap_optional(model)
        if _is_model(model):
            info = model.model_fields.get(part)
            if info is None:
                return None
            model = info.annotation
        elif typing.get_origin(model) in (dict, Mapping):
            return None
        else:
            return depth
    return None


def unknown_env_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One message per ``FINSENTRY_*`` variable of ``environ`` (default ``os.environ``) that names no section, or
    that goes on below a single setting (``FINSENTRY_MONITOR__HTTP_PORT__X``, :func:`_single_setting_below`).

    Names are matched case-insensitively (as pydantic-settings reads them); :data:`NON_SETTINGS_ENV` are allowed.
    Unknown keys inside a known section are left to validation (which names them and lists the valid keys).

    >>> unknown_env_variables({"FINSENTRY_MONITOR__HTTP_PORT": "1", "FINSENTRY_CONFIG": "c.yaml", "HOME": "/"})
    []
    >>> unknown_env_variables({"FINSENTRY_MONITOR_HTTP_PORT": "1"})[0]
    'FINSENTRY_MONITOR_HTTP_PORT: no settings section monitor_http_port (did you mean FINSENTRY_MONITOR__HTTP_PORT?)'
    >>> print(unknown_env_variables({"FINSENTRY_MONITOR__HTTP_PORT__X": "1"})[0].replace(": ", ":\\n"))
    FINSENTRY_MONITOR__HTTP_PORT__X:
    monitor.http_port is one setting, not a group; nothing can be set below it (set FINSENTRY_MONITOR__HTTP_PORT)
    """
    environ = os.environ if environ is None else environ
    sections = list(Settings.model_fields)
    out = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NON_SETTINGS_ENV:
            continue
        rest = upper[len(ENV_PREFIX) :].lower()
        section = rest.split("__", 1)[0]
        if section in sections:
            parts = rest.split("__")
            depth = _single_setting_below(parts)
            if depth is not None:
                out.append(
                    f"{name}: {'.'.join(parts[:depth])} is one setting, not a group; nothing can be set below it"
                    f" (set {ENV_PREFIX}{'__'.join(parts[:depth]).upper()})"
                )
            continue
        guess = next((s for s in sections if section.startswith(s + "_") and len(section) > len(s) + 1), None)
        hint = ""
        if guess:
            hint = f" (did you mean {ENV_PREFIX}{guess.upper()}__{upper[len(ENV_PREFIX) + len(guess) + 1 :]}?)"
        out.append(f"{name}: no settings section {section or '(empty)'}{hint}")
    return out


def read_config_file(path: Path) -> dict[str, Any]:
    """The YAML settings file ``path`` as a mapping of sections (an empty file is ``{}``).

    The file is read with :func:`~finsentry.common.textfiles.read_limited_text`: at most
    :data:`~finsentry.common.textfiles.MAX_CONFIG_BYTES` bytes, and never from a device such as ``/dev/zero``.

    Raises:
        SettingsError: the file cannot be read, is a device, is larger than
            :data:`~finsentry.common.textfiles.MAX_CONFIG_BYTES`, is not UTF-8 text, is not YAML, nests deeper than
            :data:`~finsentry.common.textfiles.MAX_JSON_DEPTH` levels, holds a lone surrogate, or is not a mapping with
            string keys (the message names the file and what is wrong, on one line).
    """
    try:
        text = read_limited_text(path, "config file", MAX_CONFIG_BYTES)
    except FileReadError as exc:
        raise SettingsError(f"{exc}; give a YAML file of sections ({', '.join(Settings.model_fields)})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {path} is not valid YAML: {_yaml_problem(exc)}") from exc
    except RecursionError:
        raise SettingsError(
            f"config file {path} nests lists or mappings deeper than {MAX_JSON_DEPTH} levels; settings are a few "
            "levels deep (docs/config.md)"
        ) from None
    problem = json_problem(data, max_values=MAX_CONFIG_VALUES)
    if problem is not None:
        raise SettingsError(f"config file {path}: {problem}; settings are small and a few levels deep (docs/config.md)")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(
            f"config file {path} must be a mapping of sections (ingest, model, monitor, alerts), not {kind_of(data)}"
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise SettingsError(
            f"config file {path}: section names must be text, got {', '.join(repr(k) for k in bad[:5])}; "
            f"sections: {', '.join(Settings.model_fields)}"
        )
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: the problem and where (line and column from 1)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"{exc.problem or exc.context}{where}"
    if isinstance(exc, yaml.reader.ReaderError):
        return f"unacceptable character #x{exc.character:04x} at offset {exc.position} (a binary file?)"
    return " ".join(str(exc).split())


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from env, the YAML file (``config_file`` or ``$FINSENTRY_CONFIG``) and defaults.

    ``overrides`` are section dicts (``ingest={...}``) applied on top of everything (used by the CLI and tests).
    The layers (file, then environment, then ``overrides``) are merged key by key
    (:func:`~finsentry.common.mappings.deep_merge`) and validated once; nothing is kept between calls.

    Raises:
        SettingsError: an unknown ``FINSENTRY_*`` variable is set, the YAML file is unreadable, not UTF-8, not
            YAML or not a mapping, or a value fails validation.
    """
    unknown = unknown_env_variables()
    if unknown:
        raise SettingsError(
            "unknown FINSENTRY_* environment variables; unset or rename them:\n"
            + "\n".join(f"  {line}" for line in unknown)
            + f"\n  settings are {ENV_PREFIX}<SECTION>__<KEY> with SECTION one of {', '.join(Settings.model_fields)}"
            + f" (docs/config.md); other variables read: {', '.join(sorted(NON_SETTINGS_ENV))}"
        )
    path = config_file or (Path(os.environ["FINSENTRY_CONFIG"]) if os.environ.get("FINSENTRY_CONFIG") else None)
    from_file = read_config_file(Path(path)) if path is not None else {}
    try:
        return Settings(**deep_merge(from_file, _EnvSource(Settings)(), overrides))
    except ValidationError as exc:
        lines = "\n".join(_describe(e) for e in exc.errors())
        raise SettingsError(f"invalid settings; fix these keys:\n{lines}") from exc
    except pydantic_settings.SettingsError as exc:  # an environment value that cannot be decoded
        cause = exc.__cause__
        if isinstance(cause, SettingsError):
            raise SettingsError(f"invalid settings; fix these environment variables:\n{cause}") from None
        raise SettingsError(f"invalid settings in the environment: {exc} ({cause})") from None
