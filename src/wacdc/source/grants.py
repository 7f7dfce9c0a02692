"""The source user's privileges as SHOW GRANTS lists them."""

from __future__ import annotations

import re

_GRANT = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<obj>\S+) TO ", re.I)


def parse_grants(lines: list[str]) -> dict[str, set[str]]:
    """SHOW GRANTS lines -> {object: {privileges}}; objects like *.* , `db`.* , `db`.`t`."""
    grants: dict[str, set[str]] = {}
    for line in lines:
        match = _GRANT.match(line)
        if not match:
            continue  # role grants ("GRANT `role` TO ...") carry no object
        privs = {p.strip().upper() for p in re.sub(r"\([^)]*\)", "", match["privs"]).split(",")}
        obj = match["obj"].replace("`", "")
        grants.setdefault(obj, set()).update(privs)
    return grants


def has_privilege(grants: dict[str, set[str]], privilege: str, database: str,
         tables: list[str] | None = None) -> bool:
    def covers(obj: str) -> bool:
        privs = grants.get(obj, set())
        return privilege in privs or "ALL PRIVILEGES" in privs or "ALL" in privs

    if covers("*.*") or covers(f"{database}.*"):
        return True
    return bool(tables) and all(covers(f"{database}.{t}") for t in tables or [])
