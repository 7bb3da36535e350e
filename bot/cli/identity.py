"""Who the CLI acts as: the operating-system user, `cli:<user>@<host>`, never a name typed in.

The user comes from the process's real uid (not $USER, which anyone can set), so the two-person rule
between two terminal users means two accounts on the machine.
"""

from __future__ import annotations

import os
import pwd
import re
import socket

from bot.access.policy import Actor

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def os_user() -> str:
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        name = f"uid{os.getuid()}"
    return _UNSAFE.sub("_", name)[:64] or f"uid{os.getuid()}"


def host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:253] or "localhost"


def cli_identity() -> str:
    return f"cli:{os_user()}@{host()}"


def cli_actor(break_glass: str | None = None) -> Actor:
    return Actor(cli_identity(), break_glass=break_glass)
