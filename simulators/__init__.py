"""Local simulators of Siro, Salesforce REST and HubSpot CRM v3.

They speak the real wire protocols (status codes, error bodies, batch shapes)
so that the tests and ``writeback demo`` exercise the real client libraries.
Each simulator is an ASGI app around an in-memory state object; ``server``
serves any of them on a loopback port, with TLS where the client insists on it.
"""
