"""What every process of a deployment shares: shared state (``store``: Redis, or memory for one
process), rate limits (``limiters``, and the connectors' gates in ``rate``), locks (``locks``), and
full-jitter backoff (``backoff``)."""
