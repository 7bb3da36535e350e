"""Local stand-ins for outside services, for tests: the OpenAI Admin API (spec-validated), the Slack Web
API (plus signed-request builders and an HTTP server for a Bolt app), and a real OpenBao dev server.
Fixtures live in ``fixtures.py``."""
