"""Local stand-ins for outside services, for tests: the OpenAI Admin API (spec-validated), the Slack Web
API (plus signed-request builders for Bolt), and a real OpenBao dev server. Fixtures: ``fixtures.py``."""
