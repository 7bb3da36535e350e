"""Blameless postmortem drafts, manager summaries and the weekly digest, rendered from the timeline."""
