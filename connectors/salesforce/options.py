"""A Salesforce connection's options, checked before any request: how the connector authenticates.

Three ways in, one per connection: ``instance_url`` + ``access_token`` (a
session opened elsewhere, never renewed), ``username`` + ``password`` (SOAP
login) or ``username`` + ``consumer_key`` + ``private_key_file`` (JWT bearer).
A missing, malformed or contradictory key raises ``SalesforceConfigError``,
which names the key, never a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import urlsplit

from connectors.base import ConfigError

DEFAULT_API_VERSION = "59.0"

# Every credential key is read (and its type checked) before any is compared with another, so that a
# non-string value is reported as such rather than as a clash it happens to be part of.
_CREDENTIAL_KEYS = ("access_token", "instance_url", "username", "password", "consumer_key", "private_key_file",
                    "security_token")
_Given = Mapping[str, str | None]


class SalesforceConfigError(ConfigError, ValueError):
    """The connection's options are missing or contradictory (names the key, never a value)."""


@dataclass(frozen=True)
class _Auth:
    kind: str  # "token", "password", "jwt"
    api_version: str
    instance_url: str | None = None
    access_token: str | None = None
    username: str | None = None
    password: str | None = None
    security_token: str | None = None
    consumer_key: str | None = None
    private_key_file: str | None = None
    domain: str = "login"

    def __repr__(self) -> str:  # never show secrets
        return f"_Auth(kind={self.kind!r}, api_version={self.api_version!r}, domain={self.domain!r})"


def _parse_options(options: Mapping[str, Any]) -> _Auth:
    """How to authenticate, from a connection's options (``SalesforceConfigError`` when they do not say)."""
    version = _api_version(_text(options, "api_version"))
    domain = _domain(_text(options, "domain"))
    given = {key: _text(options, key) for key in _CREDENTIAL_KEYS}
    if given["access_token"] is not None:
        return _token_auth(given, version)
    if given["username"] is None:
        if given["instance_url"] is not None:
            raise SalesforceConfigError("salesforce option 'access_token' is required with 'instance_url'")
        raise SalesforceConfigError(
            "salesforce options: need 'instance_url' and 'access_token', 'username' and 'password', "
            "or 'username', 'consumer_key' and 'private_key_file'")
    if given["consumer_key"] is not None or given["private_key_file"] is not None:
        return _jwt_auth(given, version, domain)
    if given["password"] is None:
        raise SalesforceConfigError("salesforce option 'password' is required with 'username'")
    return _Auth("password", version, username=given["username"], password=given["password"],
                 security_token=given["security_token"] or "", domain=domain)


def _text(options: Mapping[str, Any], key: str) -> str | None:
    """A string option, stripped; None when absent or blank."""
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SalesforceConfigError(f"salesforce option {key!r} must be a string")
    value = value.strip()
    return value or None


def _api_version(given: str | None) -> str:
    version = given or DEFAULT_API_VERSION
    version = version[1:] if version[:1] in ("v", "V") else version
    if not re.fullmatch(r"\d{2,3}\.\d", version):
        raise SalesforceConfigError("salesforce option 'api_version' must look like '59.0'")
    return version


def _domain(given: str | None) -> str:
    domain = given or "login"
    if domain.startswith("https://") or domain.endswith(".salesforce.com") or "/" in domain:
        raise SalesforceConfigError(
            "salesforce option 'domain' is the part before '.salesforce.com' (login, test or 'acme.my')")
    return domain


def _token_auth(given: _Given, version: str) -> _Auth:
    """A session opened elsewhere: ``access_token`` with its ``instance_url``, and no login key beside them."""
    clashing = [k for k in ("username", "password", "security_token", "consumer_key", "private_key_file")
                if given[k] is not None]
    if clashing:
        raise SalesforceConfigError(f"salesforce options: give either 'access_token' or {clashing[0]!r}, not both")
    instance = given["instance_url"]
    if instance is None:
        raise SalesforceConfigError("salesforce option 'instance_url' is required with 'access_token'")
    parts = urlsplit(instance)
    if parts.scheme != "https" or not parts.hostname:
        raise SalesforceConfigError("salesforce option 'instance_url' must be an https:// URL")
    return _Auth("token", version, instance_url=instance.rstrip("/"), access_token=given["access_token"])


def _jwt_auth(given: _Given, version: str, domain: str) -> _Auth:
    """A JWT bearer login: ``consumer_key`` and ``private_key_file`` together, and no password beside them."""
    password, security_token = given["password"], given["security_token"]
    if password is not None or security_token is not None:
        which = "password" if password is not None else "security_token"
        raise SalesforceConfigError(
            f"salesforce options: give either {which!r} (password login) or 'consumer_key' and "
            "'private_key_file' (JWT), not both")
    if given["consumer_key"] is None:
        raise SalesforceConfigError("salesforce option 'consumer_key' is required with 'private_key_file'")
    if given["private_key_file"] is None:
        raise SalesforceConfigError("salesforce option 'private_key_file' is required with 'consumer_key'")
    return _Auth("jwt", version, username=given["username"], consumer_key=given["consumer_key"],
                 private_key_file=given["private_key_file"], domain=domain)


__all__ = ["DEFAULT_API_VERSION", "SalesforceConfigError"]
