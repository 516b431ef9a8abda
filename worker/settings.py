"""Settings: the environment (DESIGN §3) and the TOML config file.

Everything an operator can set is read here and nowhere else. Secrets come
from the environment or from ``NAME_FILE`` (a path whose content is the
secret); ``${VAR}`` in the config file is expanded from the environment and an
unset variable is a ``ConfigError`` naming it. Problems surface as one-line
``ConfigError`` messages that name the key, never a secret's value.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from connectors.base import SLOTS, ModelTarget
from worker.errors import ConfigError

DEFAULT_SIRO_API_URL = "https://functions.siro.ai/api-externalApi"
DEFAULT_CONFIG_PATH = "config/writeback.toml"
DEFAULT_BROKER_URL = "redis://localhost:6379/0"
DEFAULT_DATABASE_URL = "sqlite:///writeback.db"

Policy = Literal["overwrite", "fill_empty", "protect_edits", "review"]
SlotMode = Literal["all", "first"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MASK_MIN_LENGTH = 4


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelOverride(_Strict):
    slot: Literal["opportunity", "account", "contacts", "lead", "engagement", "users"]
    object: str | None = None  # None: the model is known but not writable (outcome unsupported)


class FieldRules(_Strict):
    deny: list[str] = Field(default_factory=list)  # "Object.Field", never written
    # When given, only these "Object.Field"s are ever written (an empty list: none).
    allow: list[str] | None = None
    write_nulls: bool = False
    policy: dict[str, Policy] = Field(default_factory=dict)  # "Object.Field" -> policy

    @field_validator("deny", "allow")
    @classmethod
    def _object_dot_field(cls, value: list[str] | None, info: Any) -> list[str] | None:
        for entry in value or ():
            _check_object_field(info.field_name, entry)
        return value

    def entries(self) -> list[tuple[str, str]]:
        """Every (``deny``/``allow``/``policy``, entry): what ``writeback check`` holds against the CRM."""
        return [*(("deny", e) for e in self.deny), *(("allow", e) for e in self.allow or ()),
                *(("policy", e) for e in self.policy)]

    @field_validator("policy")
    @classmethod
    def _policy_keys(cls, value: dict[str, Policy]) -> dict[str, Policy]:
        # A key without an object ("StageName") could never match: say so
        # rather than silently overwriting the field the operator meant to guard.
        for entry in value:
            _check_object_field("policy", entry)
        return value

    def denies(self, object_name: str, field_name: str, aliases: Iterable[str] = ()) -> bool:
        """Whether ``Object.Field`` is denied; ``aliases`` are other names of the
        object (model names such as ``Deal`` for HubSpot ``deals``) an entry may use."""
        keys = {f"{name}.{field_name}".casefold() for name in (object_name, *aliases)}
        return any(entry.strip().casefold() in keys for entry in self.deny)

    def allows(self, object_name: str, field_name: str, aliases: Iterable[str] = ()) -> bool:
        """Whether the allow-list (when there is one) names ``Object.Field``."""
        if self.allow is None:
            return True
        keys = {f"{name}.{field_name}".casefold() for name in (object_name, *aliases)}
        return any(entry.strip().casefold() in keys for entry in self.allow)

    def policy_for(self, object_name: str, field_name: str, aliases: Iterable[str] = ()) -> Policy:
        """The write policy of ``Object.Field`` (an entry may name the object by an alias)."""
        keys = [f"{name}.{field_name}".casefold() for name in (object_name, *aliases)]
        for key in keys:  # the object's own name wins over an alias
            for entry, policy in self.policy.items():
                if entry.strip().casefold() == key:
                    return policy
        return "overwrite"


def _check_object_field(what: str, entry: str) -> None:
    """``Object.Field`` with both parts present (parse_config masks an expanded entry in the message)."""
    object_name, dot, field_name = entry.strip().partition(".")
    if not (dot and object_name.strip() and field_name.strip()):
        raise ValueError(f"{what} entry {entry!r} must be Object.Field")
    if any(part != part.strip() or " " in part for part in (object_name, field_name)):
        # "Opportunity. Amount" would match no field, so it would deny (or protect) nothing.
        raise ValueError(f"{what} entry {entry!r} must be Object.Field, without spaces")


NOTE_SLOTS = ("opportunity", "account", "contacts", "lead")
"""The link slots a summary note can be attached to (DESIGN §7)."""


class NotesConfig(_Strict):
    """``[connections.notes]``: the recording's summary as one CRM note (DESIGN §7)."""

    enabled: bool = False
    attach_to: list[Literal["opportunity", "account", "contacts", "lead"]] = Field(
        default_factory=lambda: list(NOTE_SLOTS))
    sections: list[str] = Field(default_factory=list)  # section names, in Siro's order; empty: all

    @field_validator("sections")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.strip():
                raise ValueError("sections entries must be section names, not empty")
        return value

    def wants(self, section_name: str | None) -> bool:
        """Whether a summary section of this name goes into the note."""
        if not self.sections:
            return True
        folded = (section_name or "").strip().casefold()
        return any(name.strip().casefold() == folded for name in self.sections)


class RateLimit(_Strict):
    # None: the connector's default. Zero or less could never let a request through.
    requests: int | None = Field(default=None, ge=1)
    per_s: float | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, ge=1)
    # The part of the CRM's daily allocation this service may spend (Salesforce's rolling 24 h
    # API request limit, shared with every other integration of the org); (0, 1].
    daily_share: float | None = Field(default=None, gt=0, le=1)


class ConnectionConfig(BaseModel):
    """One ``[[connections]]`` table. Keys not listed here go to the connector."""

    model_config = ConfigDict(extra="allow")

    integration_connection_id: str = "*"
    connector: str
    name: str | None = None
    # "shadow": the whole pipeline runs and records what it would write (``planned``), and sends nothing.
    mode: Literal["live", "shadow"] = "live"
    models: dict[str, ModelOverride] = Field(default_factory=dict)
    fields: FieldRules = Field(default_factory=FieldRules)
    slots: dict[str, SlotMode] = Field(default_factory=dict)
    rate_limit: RateLimit | None = None
    notes: NotesConfig = Field(default_factory=NotesConfig)

    @field_validator("integration_connection_id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        # Siro's ids are text, but a numeric id written unquoted in TOML is an int.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("slots")
    @classmethod
    def _known_slots(cls, value: dict[str, str]) -> dict[str, str]:
        for slot in value:
            if slot not in SLOTS:
                raise ValueError(f"unknown slot {slot!r} (slots: {', '.join(SLOTS)})")
        return value

    def __repr_args__(self):  # noqa: ANN204 - pydantic's repr hook
        # Connector keys may hold credentials (access_token, password, ...): never show their values.
        for key, value in super().__repr_args__():
            if key in (self.model_extra or {}) and isinstance(value, str) and looks_secret(key):
                value = "***"
            yield key, value

    @property
    def display_name(self) -> str:
        """The report's ``connection``: ``name``, defaulting to the connector's name."""
        return self.name or self.connector

    @property
    def options(self) -> dict[str, Any]:
        """The connector's own keys (instance_url, access_token, ...)."""
        return dict(self.model_extra or {})

    def model_map(self, defaults: Mapping[str, ModelTarget]) -> dict[str, ModelTarget]:
        """The connector's default model map with this connection's overrides."""
        merged = {alias.casefold(): target for alias, target in defaults.items()}
        for alias, override in self.models.items():
            merged[alias.casefold()] = ModelTarget(slot=override.slot, object=override.object)
        return merged


def looks_secret(key: str) -> bool:
    """Whether a connection key holds a credential (its value is never shown)."""
    folded = key.casefold()
    return any(word in folded for word in ("token", "password", "secret", "key"))


class PollConfig(_Strict):
    interval_s: float = Field(default=60, gt=0)  # 0 would make beat fire continuously
    lookback_h: float = Field(default=24, ge=0)
    overlap_s: float = Field(default=60, ge=0)
    page_size: int = Field(default=100, ge=1, le=100)  # Siro's list endpoint serves at most 100


class RetryConfig(_Strict):
    max_retries: int = Field(default=8, ge=0)
    base_s: float = Field(default=2, ge=0)
    max_s: float = Field(default=60, ge=0)


class WorkerConfig(_Strict):
    """Celery task limits. A killed worker's task comes back after the broker's
    visibility timeout, which must outlast a task's run plus its longest retry
    countdown (else a waiting retry is delivered twice): by default
    ``time_limit_s + retry.max_s + 10``, two minutes with the defaults."""

    soft_time_limit_s: float = Field(default=30, gt=0)
    time_limit_s: float = Field(default=45, gt=0)
    visibility_timeout_s: float | None = Field(default=None, gt=0)
    in_task_retries: int = Field(default=2, ge=0)  # quick retries inside a task before Celery's own
    metrics_port: int = Field(default=0, ge=0, le=65535)  # the worker's /metrics (all pool processes); 0: off

    @model_validator(mode="after")
    def _soft_below_hard(self) -> WorkerConfig:
        if self.soft_time_limit_s >= self.time_limit_s:
            raise ValueError("soft_time_limit_s must be below time_limit_s")
        return self


class WritebackConfig(_Strict):
    connections: list[ConnectionConfig] = Field(default_factory=list)
    poll: PollConfig = Field(default_factory=PollConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)

    @model_validator(mode="after")
    def _visibility_outlasts_retries(self) -> WritebackConfig:
        needed = self.worker.time_limit_s + self.retry.max_s
        if self.worker.visibility_timeout_s is not None and self.worker.visibility_timeout_s <= needed:
            raise ValueError(
                f"worker.visibility_timeout_s must exceed worker.time_limit_s + retry.max_s ({needed:g} s), "
                "or a retry waiting its turn would be delivered twice"
            )
        return self

    @property
    def visibility_timeout_s(self) -> float:
        if self.worker.visibility_timeout_s is not None:
            return self.worker.visibility_timeout_s
        return self.worker.time_limit_s + self.retry.max_s + 10

    @field_validator("connections")
    @classmethod
    def _unique(cls, value: list[ConnectionConfig]) -> list[ConnectionConfig]:
        names = [c.display_name for c in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two connections are named {name!r}: give each a distinct `name`")
        ids = [c.integration_connection_id for c in value]
        for ident in ids:
            if ids.count(ident) > 1:
                raise ValueError(f"two connections claim integration_connection_id {ident!r}")
        return value

    @property
    def wants_summaries(self) -> bool:
        """Whether any connection writes summary notes (then recordings are fetched with their summary)."""
        return any(connection.notes.enabled for connection in self.connections)

    def connection_for(self, integration_connection_id: str | None) -> ConnectionConfig | None:
        """The connection for a recording: exact id first, then ``"*"``."""
        for connection in self.connections:
            if integration_connection_id and connection.integration_connection_id == integration_connection_id:
                return connection
        for connection in self.connections:
            if connection.integration_connection_id == "*":
                return connection
        return None


@dataclass
class Settings:
    """The environment plus the parsed config file."""

    siro_api_url: str = DEFAULT_SIRO_API_URL
    siro_api_token: SecretStr | None = None
    config_path: str | None = None
    broker_url: str = DEFAULT_BROKER_URL
    database_url: str = DEFAULT_DATABASE_URL
    webhook_secret: SecretStr | None = None
    redis_url: str = ""  # "": the broker URL (DESIGN §3)
    config: WritebackConfig = field(default_factory=WritebackConfig)
    # Whether the user named a Redis (WRITEBACK_REDIS_URL or WRITEBACK_BROKER_URL) rather than
    # leaving the default: only then is a Redis that does not answer worth a warning.
    redis_named: bool = False

    def __post_init__(self) -> None:
        if not self.redis_url:
            self.redis_url = self.broker_url

    def require_siro_token(self) -> str:
        if self.siro_api_token is None:
            raise ConfigError("SIRO_API_TOKEN is not set (nor SIRO_API_TOKEN_FILE)")
        return self.siro_api_token.get_secret_value()


def secret_from_env(name: str, env: Mapping[str, str]) -> str | None:
    """``NAME`` from the environment, or the content of the file ``NAME_FILE``."""
    value = env.get(name)
    if value:
        return value
    path = env.get(f"{name}_FILE")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        # The decoder's message would quote bytes of the secret.
        raise ConfigError(f"{name}_FILE: {path} is not UTF-8 text") from None


class MissingSecret(str):
    """A ``[[connections]]`` value whose ``${VAR}`` is not set, in a process that talks to no CRM.

    Beat and the webhook app read the whole config (and check its keys) but
    never build a connector, so they run without the CRM's secrets; a
    connector asked for with one of these raises the ``ConfigError`` that
    loading would have raised (``ConnectorPool``).
    """

    variable: str
    where: str

    def __new__(cls, variable: str, where: str) -> MissingSecret:
        missing = super().__new__(cls, f"${{{variable}}}")
        missing.variable, missing.where = variable, where
        return missing

    def error(self) -> ConfigError:
        return ConfigError(f"config {self.where} uses ${{{self.variable}}} but {self.variable} is not set")


def expand_vars(value: Any, env: Mapping[str, str], where: str = "", used: set[str] | None = None,
                *, lenient: bool = False) -> Any:
    """Replace ``${VAR}`` in every string of a parsed TOML tree.

    ``used`` (when given) collects the substituted values, so that error
    messages about the expanded tree can mask them. ``lenient``: an unset
    variable makes its string a ``MissingSecret`` instead of an error.
    """
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            found = secret_from_env(name, env)
            if found is None:
                if lenient:
                    raise _Unset(name)
                raise ConfigError(f"config {where or 'value'} uses ${{{name}}} but {name} is not set")
            if used is not None:
                used.add(found)
            return found

        try:
            return _VAR.sub(substitute, value)
        except _Unset as unset:
            return MissingSecret(unset.variable, where or "value")
    if isinstance(value, list):
        return [expand_vars(item, env, f"{where}[{i}]", used, lenient=lenient) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: expand_vars(item, env, f"{where}.{key}" if where else key, used, lenient=lenient)
                for key, item in value.items()}
    return value


class _Unset(Exception):
    def __init__(self, variable: str) -> None:
        self.variable = variable


def parse_config(raw: Mapping[str, Any], env: Mapping[str, str], source: str = "config", *,
                 crm_secrets: bool = True) -> WritebackConfig:
    """The config of a parsed TOML tree. ``crm_secrets=False`` (beat, the webhook app): an unset
    ``${VAR}`` of a ``[[connections]]`` table is a ``MissingSecret`` rather than an error."""
    substituted: set[str] = set()
    tree = dict(raw)
    connections = tree.pop("connections", None)
    expanded = expand_vars(tree, env, used=substituted)
    if connections is not None:
        expanded["connections"] = expand_vars(connections, env, "connections", substituted,
                                              lenient=not crm_secrets)
    try:
        return WritebackConfig.model_validate(expanded)
    except ValidationError as exc:
        first = exc.errors()[0]
        location = ".".join(str(part) for part in first["loc"]) or "(top level)"
        # Validators may quote a value (a duplicate name, say), and any value
        # may have come from the environment: mask every substituted one.
        message = _mask(f"{location}: {first['msg']}", substituted)
        raise ConfigError(f"{source}: {message}") from None


def _mask(text: str, values: set[str]) -> str:
    # Longest first, so a value containing another is masked whole; very short
    # values are left alone, masking them would garble the message's words.
    # A value is masked as given and as repr() quotes it (backslashes doubled).
    spellings = {spelling for value in values for spelling in (value, repr(value)[1:-1])}
    for spelling in sorted(spellings, key=len, reverse=True):
        if len(spelling) >= _MASK_MIN_LENGTH:
            text = text.replace(spelling, "***")
    return text


def load_config_file(path: str | os.PathLike[str], env: Mapping[str, str], *, crm_secrets: bool = True) -> WritebackConfig:
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError(f"config file {path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not valid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return parse_config(raw, env, source=str(path), crm_secrets=crm_secrets)


def load_settings(env: Mapping[str, str] | None = None, *, config_path: str | None = None,
                  crm_secrets: bool = True) -> Settings:
    """Read the environment and the config file: ``config_path`` (``writeback --config``),
    else ``WRITEBACK_CONFIG``, else ``config/writeback.toml`` when it exists.

    ``crm_secrets=False``: for a process that talks to no CRM (see ``MissingSecret``).
    """
    env = os.environ if env is None else env
    token = secret_from_env("SIRO_API_TOKEN", env)
    secret = secret_from_env("WRITEBACK_WEBHOOK_SECRET", env)
    broker = secret_from_env("WRITEBACK_BROKER_URL", env) or DEFAULT_BROKER_URL
    config_path = config_path or env.get("WRITEBACK_CONFIG")
    if not config_path and Path(DEFAULT_CONFIG_PATH).is_file():
        config_path = DEFAULT_CONFIG_PATH
    config = load_config_file(config_path, env, crm_secrets=crm_secrets) if config_path else WritebackConfig()
    return Settings(
        siro_api_url=(env.get("SIRO_API_URL") or DEFAULT_SIRO_API_URL).rstrip("/"),
        siro_api_token=SecretStr(token) if token else None,
        config_path=config_path,
        broker_url=broker,
        database_url=secret_from_env("WRITEBACK_DATABASE_URL", env) or DEFAULT_DATABASE_URL,
        webhook_secret=SecretStr(secret) if secret else None,
        redis_url=secret_from_env("WRITEBACK_REDIS_URL", env) or broker,
        config=config,
        redis_named=any(env.get(name) or env.get(f"{name}_FILE")
                        for name in ("WRITEBACK_REDIS_URL", "WRITEBACK_BROKER_URL")),
    )
