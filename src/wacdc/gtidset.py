"""MySQL GTID sets with tags (MySQL 8.3+): text and binary forms, pure algebra.

mysql-replication 1.0.17 knows only untagged GTIDs: its `GtidSet` rejects text such as
`uuid:1-5:mytag:1-3`, it has no class for `GTID_TAGGED_LOG_EVENT` (type 42), and it sends
the COM_BINLOG_DUMP_GTID set in the untagged binary format only. This module is wacdc's
own GTID set for MySQL (source/library.py gives it to the library for the GTID dump).

Formats, as in MySQL's source (`libs/mysql/gtid`, `libs/mysql/gtids/readme.md`,
`sql/rpl_gtid_set.cc`, `libs/mysql/serialization`) and checked against MySQL 9.7:

Text: `uuid[:interval...][:tag:interval[:interval...]]...`, several uuids joined by `,`.
An interval is `N` or `N-M` (both inclusive), 1 <= N <= M <= 2^63-2. A tag is 1-32
characters of `[A-Za-z0-9_]`, not starting with a digit, case-insensitive (stored lower
case). MySQL prints uuids sorted, for each uuid the untagged intervals first and then
the tags sorted (byte order), intervals merged, and `,\n` between uuids.

Binary GTID set (COM_BINLOG_DUMP_GTID, Previous_gtids event), all little-endian:
  header: 8 bytes. Untagged (v0): number of TSIDs in the low 7 bytes, byte 7 = 0.
          Tagged (v1): byte 0 = 1, bytes 1-6 = number of TSIDs, byte 7 = 1.
  per TSID (uuid, tag), sorted: uuid (16 bytes); in v1 only, the tag as a string of the
          serialization library (varlen length, then the characters; empty for untagged);
          number of intervals (u64); per interval start (u64), end exclusive (u64).
  MySQL encodes v0 when the set has no tags and v1 otherwise; so does `encode()`.

Varlen integers (mysql::serialization): n = 1 + number of trailing one bits of the first
byte; for n <= 8 the value is (n-byte little-endian word) >> n; for n = 9 it is the 8
bytes after the first. Signed integers are zigzag-coded first: x >= 0 -> 2x, x < 0 ->
-2x-1.
"""

from __future__ import annotations

import re
import struct
import uuid as uuidlib
from bisect import bisect_right
from collections.abc import Iterable, Iterator

MAX_GNO = 2**63 - 2  # largest transaction number MySQL accepts (GNO_END is 2^63-1)
TAG_MAX_LENGTH = 32

_TAG = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}", re.ASCII)
_INTERVAL = re.compile(r"([0-9]+)[ \t\n\r\f\v]*(?:-[ \t\n\r\f\v]*([0-9]+))?", re.ASCII)
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}",
                   re.ASCII)
_WS = " \t\n\r\f\v"

Tsid = tuple[str, str]  # (uuid in lower-case text form, tag; "" when untagged)


def _parse_uuid(token: str, text: str) -> str:
    """A uuid as MySQL reads one: 36 characters with dashes, 32 hex digits, or braced."""
    if len(token) == 38 and token[0] == "{" and token[-1] == "}":
        token = token[1:-1]
    if _UUID.fullmatch(token) is None:
        raise ValueError(f"malformed GTID set {text!r}: {token!r} is not a UUID")
    return str(uuidlib.UUID(token))


def _parse_tag(token: str, text: str) -> str:
    if _TAG.fullmatch(token) is None:
        raise ValueError(f"malformed GTID set {text!r}: {token!r} is not a tag (1-"
                         f"{TAG_MAX_LENGTH} letters, digits or _, not starting with a digit)")
    return token.lower()


def _parse_gno(digits: str, text: str) -> int:
    value = int(digits) if len(digits) <= 20 else MAX_GNO + 1
    if not 1 <= value <= MAX_GNO:
        raise ValueError(f"malformed GTID set {text!r}: transaction number {digits} is "
                         f"outside 1..{MAX_GNO}")
    return value


def _format_intervals(intervals: Iterable[tuple[int, int]]) -> str:
    return ":".join(str(a) if b == a + 1 else f"{a}-{b - 1}" for a, b in intervals)


class MysqlGtidSet:
    """A MySQL GTID set, tagged or not: TSID (uuid, tag) -> transaction numbers.

    Intervals are kept half-open `[start, end)`, sorted, merged (disjoint, not adjacent),
    like MySQL's own. `MysqlGtidSet("")` and `MysqlGtidSet(None)` are the empty set.
    """

    def __init__(self, text: str | MysqlGtidSet | None = None) -> None:
        self._sets: dict[Tsid, list[tuple[int, int]]] = {}
        if isinstance(text, MysqlGtidSet):
            self._sets = {tsid: list(ivs) for tsid, ivs in text._sets.items()}
        elif text:
            self._parse(text)

    # ---- text ----

    def _parse(self, text: str) -> None:
        for entry in text.split(","):
            tokens = [token.strip(_WS) for token in entry.split(":")]
            if tokens == [""]:
                continue  # MySQL accepts redundant commas (and an all-blank text)
            uuid = _parse_uuid(tokens[0], text)
            tag = ""
            for token in tokens[1:]:
                if token[:1].isdigit():
                    match = _INTERVAL.fullmatch(token)
                    if match is None:
                        raise ValueError(f"malformed GTID set {text!r}: {token!r} is not "
                                         "an interval (N or N-M)")
                    start = _parse_gno(match.group(1), text)
                    end = _parse_gno(match.group(2), text) if match.group(2) else start
                    if end < start:
                        raise ValueError(f"malformed GTID set {text!r}: interval {token!r} "
                                         "ends before it starts")
                    self._add_interval((uuid, tag), start, end + 1)
                elif token:
                    tag = _parse_tag(token, text)
                else:
                    raise ValueError(f"malformed GTID set {text!r}: empty item in {entry!r}")

    def to_string(self, separator: str = ",\n") -> str:
        """MySQL's canonical text; MySQL itself separates uuids with `,\\n`."""
        parts = []
        for uuid in sorted({u for u, _ in self._sets}):
            text = uuid
            for tag in sorted(t for u, t in self._sets if u == uuid):
                intervals = _format_intervals(self._sets[(uuid, tag)])
                text += f":{tag}:{intervals}" if tag else f":{intervals}"
            parts.append(text)
        return separator.join(parts)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"MysqlGtidSet({self.to_string(',')!r})"

    # ---- set operations ----

    def _add_interval(self, tsid: Tsid, start: int, end: int) -> None:
        intervals = self._sets.setdefault(tsid, [])
        # The first interval that could touch [start, end) and the last one.
        lo = bisect_right(intervals, (start, start)) - 1
        if lo < 0 or intervals[lo][1] < start:
            lo += 1
        hi = lo
        while hi < len(intervals) and intervals[hi][0] <= end:
            start = min(start, intervals[hi][0])
            end = max(end, intervals[hi][1])
            hi += 1
        intervals[lo:hi] = [(start, end)]

    def add(self, gtid: str) -> None:
        """Fold in one GTID, `uuid:N` or `uuid:tag:N` (adding one already there is fine)."""
        parts = [part.strip(_WS) for part in gtid.split(":")]
        if len(parts) not in (2, 3) or not parts[-1].isdigit() or not parts[-1].isascii():
            raise ValueError(f"malformed GTID {gtid!r}: expected uuid:N or uuid:tag:N")
        uuid = _parse_uuid(parts[0], gtid)
        tag = _parse_tag(parts[1], gtid) if len(parts) == 3 else ""
        gno = _parse_gno(parts[-1], gtid)
        self._add_interval((uuid, tag), gno, gno + 1)

    def update(self, other: MysqlGtidSet | str) -> None:
        """In-place union."""
        for tsid, intervals in _as_set(other)._sets.items():
            for start, end in intervals:
                self._add_interval(tsid, start, end)

    def __or__(self, other: MysqlGtidSet | str) -> MysqlGtidSet:
        result = MysqlGtidSet(self)
        result.update(other)
        return result

    def _covers(self, tsid: Tsid, start: int, end: int) -> bool:
        intervals = self._sets.get(tsid, [])
        i = bisect_right(intervals, (start, 2**64)) - 1
        return i >= 0 and intervals[i][0] <= start and end <= intervals[i][1]

    def issubset(self, other: MysqlGtidSet | str) -> bool:
        other = _as_set(other)
        return all(other._covers(tsid, start, end)
                   for tsid, intervals in self._sets.items() for start, end in intervals)

    def __contains__(self, item: object) -> bool:
        """`"uuid:tag:N" in s` for one GTID; a MysqlGtidSet for a subset."""
        if isinstance(item, MysqlGtidSet):
            return item.issubset(self)
        if isinstance(item, str):
            single = MysqlGtidSet()
            single.add(item)
            return single.issubset(self)
        return False

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = MysqlGtidSet(other)
            except ValueError:
                return False
        if not isinstance(other, MysqlGtidSet):
            return NotImplemented
        return self._sets == other._sets

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __bool__(self) -> bool:
        return bool(self._sets)

    def tsids(self) -> Iterator[tuple[Tsid, list[tuple[int, int]]]]:
        """(uuid, tag), half-open intervals; in MySQL's order (uuid, then tag)."""
        for tsid in sorted(self._sets):
            yield tsid, list(self._sets[tsid])

    @property
    def has_tags(self) -> bool:
        return any(tag for _, tag in self._sets)

    # ---- binary ----

    def encode(self) -> bytes:
        """The binary form COM_BINLOG_DUMP_GTID expects: v0 (untagged) if the set has no
        tags, else v1 (tagged, MySQL 8.3+), the same choice MySQL makes."""
        tagged = self.has_tags
        count = len(self._sets)
        out = bytearray(struct.pack("<Q", (1 | count << 8 | 1 << 56) if tagged else count))
        for (uuid, tag), intervals in self.tsids():
            out += uuidlib.UUID(uuid).bytes
            if tagged:
                out += _encode_varlen_unsigned(len(tag)) + tag.encode("ascii")
            out += struct.pack("<Q", len(intervals))
            for start, end in intervals:
                out += struct.pack("<QQ", start, end)
        return bytes(out)

    # The names mysql-replication's dump code calls on its own GtidSet.
    encoded = encode

    @property
    def encoded_length(self) -> int:
        return len(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> MysqlGtidSet:
        """Read a v0 or v1 binary GTID set (e.g. a Previous_gtids event body)."""
        if len(data) < 8:
            raise ValueError("encoded GTID set: shorter than its 8-byte header")
        header = struct.unpack_from("<Q", data)[0]
        version = header >> 56
        if version == 0:
            count, tagged = header & (2**56 - 1), False
        elif version == 1 and header & 0xFF == 1:
            count, tagged = (header >> 8) & (2**48 - 1), True
        else:
            raise ValueError(f"encoded GTID set: unsupported format header {header:#018x}")
        result, pos = cls(), 8
        try:
            for _ in range(count):
                uuid = str(uuidlib.UUID(bytes=bytes(data[pos:pos + 16])))
                pos += 16
                tag = ""
                if tagged:
                    length, pos = read_varlen_unsigned(data, pos)
                    tag = data[pos:pos + length].decode("ascii")
                    if tag and _TAG.fullmatch(tag) is None:
                        raise ValueError(f"encoded GTID set: bad tag {tag!r}")
                    pos += length
                (n,) = struct.unpack_from("<Q", data, pos)
                pos += 8
                for _ in range(n):
                    start, end = struct.unpack_from("<QQ", data, pos)
                    pos += 16
                    if not 1 <= start < end <= MAX_GNO + 1:
                        raise ValueError(f"encoded GTID set: bad interval {start}..{end}")
                    result._add_interval((uuid, tag), start, end)
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise ValueError(f"encoded GTID set: truncated or malformed ({exc})") from None
        if pos != len(data):
            raise ValueError(f"encoded GTID set: {len(data) - pos} bytes left over")
        return result


def _as_set(value: MysqlGtidSet | str) -> MysqlGtidSet:
    return value if isinstance(value, MysqlGtidSet) else MysqlGtidSet(value)


# ---- mysql::serialization varlen integers ----

def _encode_varlen_unsigned(value: int) -> bytes:
    if not 0 <= value < 2**64:
        raise ValueError(f"varlen integer out of range: {value}")
    n = (value.bit_length() * 575 >> 12) + 1  # MySQL's byte count: 7 bits a byte, 9 max
    if n == 9:
        return b"\xff" + value.to_bytes(8, "little")
    return ((value << n) | ((1 << (n - 1)) - 1)).to_bytes(n, "little")


def read_varlen_unsigned(data: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it) of the unsigned varlen integer at `pos`."""
    if pos >= len(data):
        raise ValueError("varlen integer: no data")
    first = data[pos]
    n = 1
    while n < 9 and first >> (n - 1) & 1:
        n += 1
    if pos + n > len(data):
        raise ValueError("varlen integer: truncated")
    if n == 9:
        return int.from_bytes(data[pos + 1:pos + 9], "little"), pos + 9
    return int.from_bytes(data[pos:pos + n], "little") >> n, pos + n


def read_varlen_signed(data: bytes, pos: int) -> tuple[int, int]:
    raw, pos = read_varlen_unsigned(data, pos)
    return (-(raw >> 1) - 1 if raw & 1 else raw >> 1), pos
