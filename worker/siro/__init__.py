"""Siro's external API: the HTTP client (``client``) and its tolerant payload models (``models``)."""
