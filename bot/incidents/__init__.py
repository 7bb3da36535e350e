"""Incidents and their timeline: the append-only, hash-chained record every summary is rendered from."""
