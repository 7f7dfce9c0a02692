"""The binlog event that carries a tagged GTID (MySQL 8.3+), plugged into mysql-replication.

mysql-replication 1.0.17 has no class for `GTID_TAGGED_LOG_EVENT` (type 42) and sends the
COM_BINLOG_DUMP_GTID set in the untagged binary format only; the GTID set itself (text and
binary forms, tags) is wacdc.gtidset. This module decodes the event into its own event
class; source/library.py plugs that class (and MysqlGtidSet for the dump) into the library.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from pymysqlreplication.event import BinLogEvent, GtidEvent

from wacdc.gtidset import (
    _TAG,
    MAX_GNO,
    TAG_MAX_LENGTH,
    read_varlen_signed,
    read_varlen_unsigned,
)

GTID_TAGGED_LOG_EVENT = 0x2A  # binary_log::GTID_TAGGED_LOG_EVENT


@dataclass(frozen=True)
class TaggedGtid:
    """What a GTID_TAGGED_LOG_EVENT says (fields the event leaves out are None)."""

    uuid: str
    tag: str
    gno: int
    flags: int = 0
    last_committed: int | None = None
    sequence_number: int | None = None
    immediate_commit_timestamp: int | None = None
    original_commit_timestamp: int | None = None
    transaction_length: int | None = None
    immediate_server_version: int | None = None
    original_server_version: int | None = None
    commit_group_ticket: int | None = None

    @property
    def gtid(self) -> str:
        return f"{self.uuid}:{self.tag}:{self.gno}" if self.tag else f"{self.uuid}:{self.gno}"


# Gtid_event::define_fields(), in field-id order: name and how the value is coded.
_TAGGED_FIELDS: tuple[tuple[str, str], ...] = (
    ("flags", "unsigned"),  # 0: gtid_flags (1 = may have statement-based events)
    ("uuid", "uuid"),  # 1: 16 bytes, each one an unsigned varlen integer
    ("gno", "signed"),  # 2
    ("tag", "string"),  # 3: varlen length, then the characters
    ("last_committed", "signed"),  # 4
    ("sequence_number", "signed"),  # 5
    ("immediate_commit_timestamp", "unsigned"),  # 6
    ("original_commit_timestamp", "unsigned"),  # 7: only when != immediate
    ("transaction_length", "unsigned"),  # 8
    ("immediate_server_version", "unsigned"),  # 9
    ("original_server_version", "unsigned"),  # 10: only when != immediate
    ("commit_group_ticket", "unsigned"),  # 11: only when set
)
_SERIALIZATION_FORMAT_VERSION = 1


def decode_tagged_gtid_event(body: bytes) -> TaggedGtid:
    """Decode a GTID_TAGGED_LOG_EVENT body (after the 19-byte header, without checksum).

    The body is one mysql::serialization message: format version (varlen, 1), message
    size in bytes counted from the message start (varlen), last non-ignorable field id
    (varlen), then `field id, value` pairs in increasing id order; optional fields are
    left out, and fields a newer server adds after the known ones are skipped by size.
    """
    body = bytes(body)
    try:
        values = _checked(_fields(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed GTID_TAGGED_LOG_EVENT: {exc}") from None
    values.setdefault("original_commit_timestamp", values.get("immediate_commit_timestamp"))
    values.setdefault("original_server_version", values.get("immediate_server_version"))
    return TaggedGtid(**values)


def _fields(body: bytes) -> dict[str, Any]:
    """The message's known fields by name, as coded (the header checked)."""
    version, pos = read_varlen_unsigned(body, 0)
    if version != _SERIALIZATION_FORMAT_VERSION:
        raise ValueError(f"unknown serialization format version {version}")
    size, pos = read_varlen_unsigned(body, pos)
    if size > len(body):
        raise ValueError(f"message size {size} beyond the {len(body)}-byte body")
    last_non_ignorable, pos = read_varlen_unsigned(body, pos)
    if last_non_ignorable > len(_TAGGED_FIELDS):
        raise ValueError(f"unknown non-ignorable field {last_non_ignorable - 1}")
    values: dict[str, Any] = {}
    expected = 0
    while pos < size:
        field_id, after_id = read_varlen_unsigned(body, pos)
        if field_id >= len(_TAGGED_FIELDS):
            break  # a field added by a newer server: ignorable, skipped with the rest
        if field_id < expected:
            raise ValueError(f"field id {field_id} out of order")
        expected = field_id + 1
        name, kind = _TAGGED_FIELDS[field_id]
        values[name], pos = _field_value(body, after_id, size, kind)
    if pos > size:
        raise ValueError("a field runs past the message end")
    return values


def _field_value(body: bytes, pos: int, size: int, kind: str) -> tuple[Any, int]:
    """One field's value coded as `kind`, and the position after it."""
    if kind == "uuid":
        raw = bytearray()
        for _ in range(16):
            byte, pos = read_varlen_unsigned(body, pos)
            raw.append(byte)
        return str(uuidlib.UUID(bytes=bytes(raw))), pos
    if kind == "string":
        length, pos = read_varlen_unsigned(body, pos)
        if length > TAG_MAX_LENGTH or pos + length > size:
            raise ValueError(f"tag length {length} out of range")
        return body[pos:pos + length].decode("ascii"), pos + length
    if kind == "signed":
        return read_varlen_signed(body, pos)
    return read_varlen_unsigned(body, pos)


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """The fields, with the uuid, tag and transaction number checked (tag lowercased)."""
    if "uuid" not in values or "gno" not in values:
        raise ValueError("no uuid or no transaction number")
    tag = values.pop("tag", "")
    if tag and _TAG.fullmatch(tag) is None:
        raise ValueError(f"bad tag {tag!r}")
    values["tag"] = tag.lower()
    if not 1 <= values["gno"] <= MAX_GNO:
        raise ValueError(f"transaction number {values['gno']} out of range")
    return values


# ---- mysql-replication integration ----

class TaggedGtidEvent(GtidEvent):
    """GTID_TAGGED_LOG_EVENT (type 42) for mysql-replication: `.gtid` is `uuid:tag:N`.

    A subclass of the library's GtidEvent, so code that handles GtidEvent (and reads
    `.gtid`) handles tagged transactions alike. The body is decoded here, not by
    GtidEvent.__init__ (which knows only the untagged layout)."""

    def __init__(self, from_packet: Any, event_size: int, table_map: Any,
                 ctl_connection: Any, **kwargs: Any) -> None:
        BinLogEvent.__init__(self, from_packet, event_size, table_map, ctl_connection,
                             **kwargs)
        self.tagged = decode_tagged_gtid_event(self.packet.read(event_size))
        self.uuid, self.tag, self.gno = self.tagged.uuid, self.tagged.tag, self.tagged.gno
        self.sid = uuidlib.UUID(self.uuid).bytes
        self.commit_flag = self.tagged.flags & 1 == 1
        self.lt_type = None
        self.last_committed = self.tagged.last_committed
        self.sequence_number = self.tagged.sequence_number

    @property
    def gtid(self) -> str:
        return self.tagged.gtid

    def __repr__(self) -> str:
        return f'<TaggedGtidEvent "{self.gtid}">'
