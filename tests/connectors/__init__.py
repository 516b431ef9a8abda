"""Tests of the connector seam: the contract suite run against every connector, the test kit, and support."""
