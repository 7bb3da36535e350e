"""The sandbox: example keys in a local OpenAI-Admin-compatible provider plus a local OpenBao dev server.

It is also the drill mode: the whole runbook rehearsed against sandbox copies, touching nothing real.
"""

from bot.sandbox.openai_server import SandboxKeySpec, SandboxOpenAI, SeededKey, new_key_value
from bot.sandbox.openbao import OpenBaoNotFoundError, SandboxOpenBao, find_bao_binary

__all__ = [
    "OpenBaoNotFoundError",
    "SandboxKeySpec",
    "SandboxOpenAI",
    "SandboxOpenBao",
    "SeededKey",
    "find_bao_binary",
    "new_key_value",
]
