"""The streaming anomaly detector behind pages and `keybot detect score`."""
