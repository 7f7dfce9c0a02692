# The C extension src/wacdc/source/_jsonbinary.c (see source/jsonbinary.py).
from collections.abc import Callable

def json_text(double_text: Callable[[float], str], opaque_text: Callable[[int, bytes], str],
              data: bytes | bytearray | memoryview, /) -> str: ...
