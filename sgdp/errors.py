"""Error types. Every error a user can cause is an ``SgdpError``; the CLI prints it as one line."""

from __future__ import annotations

import re
from typing import Any


def one_line(text: str, limit: int = 2000) -> str:
    """A message as one line: control characters escaped (a NUL or a newline in a name cannot split
    it or reach the terminal), cut with an ellipsis when very long."""
    out = "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)
    return out if len(out) <= limit else out[: limit - 1] + "…"


# The lists whose items a message names, by the key that holds the list: what an item is called and
# the field that names it (rules by their ``id``, the rest by ``name``; scenario steps by ``name``).
_NAMED_ITEMS = {
    "security_groups": ("security group", "name"),
    "security_group_rules": ("rule", "id"),
    "rules": ("rule", "id"),
    "inbound_rules": ("rule", "id"),
    "outbound_rules": ("rule", "id"),
    "instances": ("instance", "name"),
    "vpcs": ("VPC", "name"),
    "subnets": ("subnet", "name"),
    "address_groups": ("address group", "name"),
    "load_balancers": ("load balancer", "name"),
    "listeners": ("listener", "name"),
    "network_acls": ("network ACL", "name"),
    "peerings": ("peering", "name"),
    "private_networks": ("private network", "name"),
    "steps": ("step", "name"),
    "servers": ("server", "name"),   # saved Huawei Cloud API responses (sgdp import huawei)
    "ports": ("port", "name"),
}
# one step of a path: `.key` (or a first `key`), `[index]`, or `["key"]` (a JSON string)
_PATH_STEP = re.compile(r'\.?([^.\[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')
_BARE_NAME = re.compile(r"[\w.:@/+-]+")


def path_names(data: Any, path: str) -> str:
    """The names of the objects an index path goes through, for a message to show beside the path:
    ``security_groups[1].rules[3].multiport`` in ``data`` gives ``security group Sg-Web, rule
    ssh-office``. Items without a name (or not found in ``data``) are left out; ``""`` if none has one.
    """
    names = []
    node, key = data, None
    for m in _PATH_STEP.finditer(path):
        if m.group(2) is None:
            key = m.group(1) if m.group(1) is not None else _json_string(m.group(3))
            node = node.get(key) if isinstance(node, dict) else None
            continue
        index = int(m.group(2))
        node = node[index] if isinstance(node, list) and index < len(node) else None
        if key in _NAMED_ITEMS and isinstance(node, dict):
            what, field = _NAMED_ITEMS[key]
            value = node.get(field)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                names.append(f"{what} {_shown_name(str(value))}")
    return ", ".join(names)


def _json_string(text: str) -> str | None:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return None


def _shown_name(name: str, limit: int = 60) -> str:
    """A name as a message shows it: bare when it is one plain word, else quoted; cut when long."""
    if len(name) > limit:
        name = name[: limit - 1] + "…"
    return name if _BARE_NAME.fullmatch(name) else repr(name)


class SgdpError(Exception):
    """Root of every error sgdp reports to a user (exit code 2)."""


class ConfigError(SgdpError, ValueError):
    """An invalid topology, timeline or scenario file.

    The message names the file, the path to the field (``names``: the objects on that path by their
    names, shown in parentheses after it, see :func:`path_names`) and the offending value.
    """

    def __init__(self, file: str, path: str, message: str, names: str = ""):
        self.file = file
        self.path = path
        self.names = names
        self.detail = message
        shown = f"{path} ({names})" if names else path
        where = f"{file}: {shown}: " if path else f"{file}: "
        super().__init__(one_line(where + message))


class InputError(SgdpError, ValueError):
    """Bad input that is not a topology: a capture, a packet description, a command-line value."""


class UsageError(SgdpError):
    """A command-line usage error."""


class OutputError(SgdpError):
    """An output that cannot be written: a full disk, a permission problem (names the path)."""


class Interrupted(BaseException):
    """The run was stopped by a signal (SIGTERM; SIGINT arrives as KeyboardInterrupt).

    A BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it; cleanup
    code sees it and re-raises."""

    def __init__(self, signum: int):
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")
