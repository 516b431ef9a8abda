"""The client side: a requests session that trusts the local CA and sends Salesforce logins to the simulator.

simple-salesforce hard-codes ``https://{domain}.salesforce.com`` for logins:
``route_salesforce_logins(session, served_url)`` mounts a transport adapter
that sends every ``*.salesforce.com`` request to the simulator instead.
"""

from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter


class LocalRoute(HTTPAdapter):
    """A requests transport adapter that sends ``*.salesforce.com`` to a local URL.

    simple-salesforce logs in at ``https://{domain}.salesforce.com`` no matter
    what; mounted on ``https://``, this adapter rewrites those requests to the
    simulator (``served_url``) and passes every other host through unchanged.
    """

    def __init__(self, served_url: str, suffixes: Sequence[str] = ("salesforce.com",), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        target = urlsplit(served_url)
        self.scheme = target.scheme
        self.netloc = target.netloc
        self.suffixes = tuple(suffixes)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        parts = urlsplit(request.url or "")
        host = (parts.hostname or "").lower()
        if any(host == s or host.endswith("." + s) for s in self.suffixes):
            request.url = urlunsplit((self.scheme, self.netloc, parts.path, parts.query, parts.fragment))
        return super().send(request, *args, **kwargs)


def route_salesforce_logins(session: requests.Session, served_url: str) -> requests.Session:
    """Mount ``LocalRoute`` on ``session`` so logins reach the simulator; returns the session."""
    session.mount("https://", LocalRoute(served_url))
    return session


def client_session(served_url: str | None = None, *, ca_bundle: str | None = None) -> requests.Session:
    """A requests session that trusts the local CA and (given ``served_url``) routes logins to it.

    ``trust_env`` is off so that an ambient ``REQUESTS_CA_BUNDLE`` or proxy
    cannot override the local CA.
    """
    # imported here: importing the simulator should not need trustme until a session is made
    from simulators.tls import local_tls

    session = requests.Session()
    session.trust_env = False
    session.verify = ca_bundle or local_tls().ca_bundle
    if served_url:
        route_salesforce_logins(session, served_url)
    return session
