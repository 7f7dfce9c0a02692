"""The all-types table and its rows, shared by the converter and decoder tests."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from tests.support.harness import SourceDb

UTC = dt.UTC
NINES = "9" * 35 + "." + "9" * 30
DEEP_JSON = {
    "a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": [1, [2, [3, [4, []]]]]}}}}}}},
    "big": 12345678901234567890123, "neg": -9223372036854775809, "float": 1.5e300,
    "tiny": -2.5e-300, "ключ": "значение", "🔑": "✓ 😀", "empty_obj": {}, "empty_arr": [],
    "nulls": [None, True, False], "esc": "quote\" backslash\\ tab\t nl\n é",
}
ALL_BYTES = bytes(range(256))


ALLTYPES = """
CREATE TABLE alltypes (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  b BOOLEAN, d DECIMAL(65,30), d2 DECIMAL(10,2), f FLOAT, db DOUBLE,
  c CHAR(10), vc VARCHAR(191), tt TINYTEXT, t TEXT, mt MEDIUMTEXT, lt LONGTEXT,
  bn BINARY(4), vb VARBINARY(300), bl BLOB, lb LONGBLOB,
  dt0 DATETIME NULL, dt3 DATETIME(3) NULL, dt6 DATETIME(6) NULL,
  ts0 TIMESTAMP NULL, ts3 TIMESTAMP(3) NULL, ts6 TIMESTAMP(6) NULL,
  dte DATE, tm TIME, tm6 TIME(6), yr YEAR, j JSON,
  e ENUM('a','b','c d'), s SET('x','y','z'), bit1 BIT(1), bit64 BIT(64)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci
"""


ROWS: list[tuple[dict[str, str], dict[str, Any]]] = [
    ({"ti": "-128", "tiu": "0", "si": "-32768", "siu": "0", "mi": "-8388608", "miu": "0",
      "i": "-2147483648", "iu": "0", "bi": "-9223372036854775808", "biu": "0", "b": "0",
      "d": f"-{NINES}", "d2": "-99999999.99", "f": "-3.40282346638529e+38",
      "db": "-1.7976931348623157e308", "c": "''", "vc": "''", "tt": "''", "t": "''",
      "mt": "''", "lt": "''", "bn": "0x00000000", "vb": "0x" + ALL_BYTES.hex(), "bl": "''",
      "lb": "0x" + (ALL_BYTES * 3).hex(),
      "dt0": "'1000-01-01 00:00:00'", "dt3": "'1000-01-01 00:00:00.001'",
      "dt6": "'1000-01-01 00:00:00.000001'", "ts0": "'1970-01-01 00:00:01'",
      "ts3": "'1970-01-01 00:00:01.001'", "ts6": "'1970-01-01 00:00:01.000001'",
      "dte": "'1000-01-01'", "tm": "'-838:59:59'", "tm6": "'-838:59:58.999999'", "yr": "1901",
      "j": "'{}'", "e": "'a'", "s": "''", "bit1": "b'0'", "bit64": "b'0'"},
     {"ti": -128, "tiu": 0, "si": -32768, "siu": 0, "mi": -8388608, "miu": 0,
      "i": -2147483648, "iu": 0, "bi": -(2**63), "biu": 0, "b": False,
      "d": Decimal(f"-{NINES}"), "d2": Decimal("-99999999.99"), "f": -3.4028234663852886e38,
      "db": -1.7976931348623157e308, "c": "", "vc": "", "tt": "", "t": "", "mt": "", "lt": "",
      "bn": b"\x00" * 4, "vb": ALL_BYTES, "bl": b"", "lb": ALL_BYTES * 3,
      "dt0": dt.datetime(1000, 1, 1), "dt3": dt.datetime(1000, 1, 1, 0, 0, 0, 1000),
      "dt6": dt.datetime(1000, 1, 1, 0, 0, 0, 1),
      "ts0": dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC),
      "ts3": dt.datetime(1970, 1, 1, 0, 0, 1, 1000, tzinfo=UTC),
      "ts6": dt.datetime(1970, 1, 1, 0, 0, 1, 1, tzinfo=UTC),
      "dte": dt.date(1000, 1, 1), "tm": -dt.timedelta(hours=838, minutes=59, seconds=59),
      "tm6": -dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=999999),
      "yr": 1901, "j": {}, "e": "a", "s": [], "bit1": False, "bit64": "0" * 64}),
    ({"ti": "127", "tiu": "255", "si": "32767", "siu": "65535", "mi": "8388607",
      "miu": "16777215", "i": "2147483647", "iu": "4294967295", "bi": "9223372036854775807",
      "biu": "18446744073709551615", "b": "1", "d": NINES, "d2": "99999999.99",
      "f": "3.40282346638529e+38", "db": "1.7976931348623157e308", "c": "'abcdefghij'",
      "vc": "'😀 emoji 𝄞 中文 ñ'", "tt": "REPEAT('x', 255)", "t": "REPEAT('🎉', 1000)",
      "mt": "REPEAT('m', 70000)", "lt": "REPEAT('é', 100000)", "bn": "0xFFFFFFFF",
      "vb": "0x" + "ff" * 300, "bl": "0x" + ALL_BYTES.hex(), "lb": "0x" + "00" * 10,
      "dt0": "'9999-12-31 23:59:59'", "dt3": "'9999-12-31 23:59:59.999'",
      "dt6": "'9999-12-31 23:59:59.999999'", "ts0": "'2038-01-19 03:14:07'",
      "ts3": "'2038-01-19 03:14:07.999'", "ts6": "'2038-01-19 03:14:07.999999'",
      "dte": "'9999-12-31'", "tm": "'838:59:59'", "tm6": "'838:59:58.999999'", "yr": "2155",
      "j": "'" + json.dumps(DEEP_JSON, ensure_ascii=False).replace("\\", "\\\\") + "'",
      "e": "'c d'", "s": "'z,x'", "bit1": "b'1'", "bit64": "0xFFFFFFFFFFFFFFFF"},
     {"ti": 127, "tiu": 255, "si": 32767, "siu": 65535, "mi": 8388607, "miu": 16777215,
      "i": 2147483647, "iu": 4294967295, "bi": 2**63 - 1, "biu": 2**64 - 1, "b": True,
      "d": Decimal(NINES), "d2": Decimal("99999999.99"), "f": 3.4028234663852886e38,
      "db": 1.7976931348623157e308, "c": "abcdefghij", "vc": "😀 emoji 𝄞 中文 ñ",
      "tt": "x" * 255, "t": "🎉" * 1000, "mt": "m" * 70000, "lt": "é" * 100000,
      "bn": b"\xff" * 4, "vb": b"\xff" * 300, "bl": ALL_BYTES, "lb": b"\x00" * 10,
      "dt0": dt.datetime(9999, 12, 31, 23, 59, 59),
      "dt3": dt.datetime(9999, 12, 31, 23, 59, 59, 999000),
      "dt6": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
      "ts0": dt.datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC),
      "ts3": dt.datetime(2038, 1, 19, 3, 14, 7, 999000, tzinfo=UTC),
      "ts6": dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
      "dte": dt.date(9999, 12, 31), "tm": dt.timedelta(hours=838, minutes=59, seconds=59),
      "tm6": dt.timedelta(hours=838, minutes=59, seconds=58, microseconds=999999),
      "yr": 2155, "j": DEEP_JSON, "e": "c d", "s": ["x", "z"], "bit1": True,
      "bit64": "1" * 64}),
    # Zero dates and an invalid ENUM need a lax sql_mode; JSON null is not SQL NULL.
    ({"dt0": "'0000-00-00 00:00:00'", "dte": "'0000-00-00'", "ts0": "'0000-00-00 00:00:00'",
      "yr": "0", "e": "'bogus'", "j": "'null'", "s": "'y'", "c": "'trail   '",
      "vc": "'trail  '", "bn": "'ab'", "vb": "0x0000"},
     {"dt0": None, "dte": None, "ts0": None, "yr": 0, "e": "", "j": None, "s": ["y"],
      "c": "trail", "vc": "trail  ", "bn": b"ab\x00\x00", "vb": b"\x00\x00"}),
    ({}, {}),  # everything NULL
    ({"f": "0.1", "db": "0.1", "d": "-0.000000000000000000000000000001", "d2": "0.00",
      "tm": "'00:00:00'", "tm6": "'-00:00:00.000001'", "j": "'\"just a string\"'",
      "b": "1", "bit64": "b'101'"},
     {"f": 0.1, "db": 0.1, "d": Decimal("-0.000000000000000000000000000001"),
      "d2": Decimal("0.00"), "tm": dt.timedelta(0), "tm6": dt.timedelta(microseconds=-1),
      "j": "just a string", "b": True, "bit64": "0" * 61 + "101"}),
    ({"j": "'[1, 2.5, -3e-7, 12345678901234567890, \"x\", {\"k\": [{}]}]'",
      "tm6": "'100:00:00.5'", "ts6": "'2024-02-29 12:34:56.789012'"},
     {"j": [1, 2.5, -3e-7, 12345678901234567890, "x", {"k": [{}]}],
      "tm6": dt.timedelta(hours=100, microseconds=500000),
      "ts6": dt.datetime(2024, 2, 29, 12, 34, 56, 789012, tzinfo=UTC)}),
]


def _insert_all(db: SourceDb) -> None:
    with db.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = ''")
        cur.execute("SET time_zone = '+00:00'")
        for row_id, (literals, _) in enumerate(ROWS, start=1):
            cols = ", ".join(["id", *literals])
            vals = ", ".join([str(row_id), *literals.values()])
            cur.execute(f"INSERT INTO alltypes ({cols}) VALUES ({vals})")
