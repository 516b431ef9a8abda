"""Who may use the console: the operator token, signed session cookies and CSRF tokens.

* The token (``WRITEBACK_CONSOLE_TOKEN``, or ``_FILE``) is typed once on the
  login page and compared in constant time; it never goes into a cookie.
* A session is a random id and an expiry, signed with HMAC-SHA256 under a key
  derived from the token (so sessions survive a restart and every replica
  accepts them, and a new token ends every session):
  ``<id>.<expiry>.<signature>``. Logging out revokes the id in this process
  and clears the cookie.
* The CSRF token of a session is HMAC(key, ``csrf:<id>``): one per session,
  nothing stored, checked in constant time on every POST.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time

from worker.errors import ConfigError
from worker.settings import secret_from_env

__all__ = ["MIN_TOKEN_LENGTH", "TOKEN_VARIABLE", "Sessions", "console_token"]

TOKEN_VARIABLE = "WRITEBACK_CONSOLE_TOKEN"
MIN_TOKEN_LENGTH = 16  # a guessable token would be the whole defence
SESSION_TTL_S = 12 * 3600  # a working day; then the login page again


def console_token(env: dict[str, str]) -> str:
    """The operator token from the environment; a ``ConfigError`` (exit 2) without a usable one."""
    token = secret_from_env(TOKEN_VARIABLE, env)
    if not token or not token.strip():
        raise ConfigError(f"{TOKEN_VARIABLE} is not set (nor {TOKEN_VARIABLE}_FILE): "
                          "the console does not start without a token")
    token = token.strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"{TOKEN_VARIABLE} is shorter than {MIN_TOKEN_LENGTH} characters: "
                          "use a long random one (openssl rand -hex 32)")
    return token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Sessions:
    """Issues and checks session cookies and their CSRF tokens for one operator token."""

    def __init__(self, token: str, *, ttl_s: float = SESSION_TTL_S, clock=time.time) -> None:  # noqa: ANN001
        self._token = token.encode("utf-8")
        self._key = hmac.new(self._token, b"siro-writeback console session v1", hashlib.sha256).digest()
        self.ttl_s = ttl_s
        self._clock = clock
        self._revoked: dict[str, float] = {}  # session id -> its expiry (forgotten once expired)
        self._lock = threading.Lock()

    def token_matches(self, given: str) -> bool:
        """Constant time, whatever the length given."""
        return hmac.compare_digest(hashlib.sha256(given.encode("utf-8")).digest(),
                                   hashlib.sha256(self._token).digest())

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode("ascii"), hashlib.sha256).digest())

    def issue(self) -> str:
        """A new session's cookie value."""
        body = f"{secrets.token_urlsafe(18)}.{int(self._clock() + self.ttl_s)}"
        return f"{body}.{self._sign(body)}"

    def session_id(self, cookie: str | None) -> str | None:
        """The session id of a valid, unexpired, unrevoked cookie; else None."""
        if not cookie or len(cookie) > 200:
            return None
        try:
            session_id, expiry, signature = cookie.split(".")
            body = f"{session_id}.{expiry}"
            if not hmac.compare_digest(signature.encode("ascii"), self._sign(body).encode("ascii")):
                return None
            expires = int(expiry)
        except (ValueError, UnicodeError):
            return None
        if expires < self._clock():
            return None
        with self._lock:
            if session_id in self._revoked:
                return None
        return session_id

    def revoke(self, cookie: str | None) -> None:
        session_id = self.session_id(cookie)
        if session_id is None:
            return
        now = self._clock()
        with self._lock:
            self._revoked = {sid: until for sid, until in self._revoked.items() if until >= now}
            self._revoked[session_id] = now + self.ttl_s

    def csrf_token(self, session_id: str) -> str:
        return self._sign(f"csrf:{session_id}")

    def csrf_matches(self, session_id: str, given: str | None) -> bool:
        if not given:
            return False
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.csrf_token(session_id).encode("ascii"))
