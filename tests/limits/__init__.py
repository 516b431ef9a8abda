"""Tests of ``worker/limits`` (shared state, limiters, locks) and of the one log redaction filter."""
