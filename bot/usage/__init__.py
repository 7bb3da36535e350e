"""Usage series: per-key, per-minute traffic from the OpenAI usage API, the ingest endpoint and files."""
