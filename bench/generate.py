"""Generate the WhatsApp tables at scale: `python bench/generate.py mysql://root@host/db N`.

The work is `wacdc.datagen.create_whatsapp_database` (also what `wacdc demo` loads):
the other tables in the data profile's proportions, WhatsAppMessage generated up to
20,000 rows and then doubled server-side until it holds N rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from wacdc.devtools.datagen import create_whatsapp_database


def generate(url_text: str, messages: int) -> dict[str, int]:
    """Create the database with the 19 tables and fill it; returns rows per table."""
    return create_whatsapp_database(url_text, messages)


if __name__ == "__main__":
    print(generate(sys.argv[1], int(sys.argv[2])))
