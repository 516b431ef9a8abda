"""A throwaway certificate authority for the simulators.

simple-salesforce always speaks HTTPS, so the Salesforce simulator needs a
certificate that the client trusts. ``trustme`` makes a private CA per process;
the CA bundle is written to a temporary file that callers hand to
``REQUESTS_CA_BUNDLE`` (requests) or ``verify=`` (httpx).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache

import trustme

# Names the simulators answer for: loopback, plus Salesforce's login hosts so a
# routing adapter can send ``login.salesforce.com`` to a local port.
SERVER_NAMES = ("127.0.0.1", "localhost", "::1", "login.salesforce.com", "test.salesforce.com", "*.salesforce.com")


@dataclass(frozen=True)
class LocalTLS:
    ca_bundle: str  # PEM of the CA, for clients
    cert_file: str  # PEM of the server certificate chain
    key_file: str  # PEM of the server private key


@lru_cache(maxsize=1)
def local_tls() -> LocalTLS:
    """The process-wide local CA and server certificate (made once)."""
    ca = trustme.CA()
    cert = ca.issue_cert(*SERVER_NAMES)
    folder = tempfile.mkdtemp(prefix="writeback-tls-")
    atexit.register(shutil.rmtree, folder, True)
    ca_path = os.path.join(folder, "ca.pem")
    cert_path = os.path.join(folder, "server.pem")
    key_path = os.path.join(folder, "server.key")
    ca.cert_pem.write_to_path(ca_path)
    cert.private_key_pem.write_to_path(key_path)
    with open(cert_path, "wb") as out:
        for blob in cert.cert_chain_pems:
            out.write(blob.bytes())
    return LocalTLS(ca_bundle=ca_path, cert_file=cert_path, key_file=key_path)
