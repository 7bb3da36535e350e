"""The runbook engine: runbooks as data, runs and steps as rows, resumable after any crash."""
