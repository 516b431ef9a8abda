"""What every process of a deployment shares: rate limits, locks, backoff."""
