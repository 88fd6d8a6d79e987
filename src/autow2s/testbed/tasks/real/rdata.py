"""Read one data frame out of an R package's lazy-load store (data/Rdata.rdx + Rdata.rdb), without R.

Why our own reader: the store is R's XDR serialisation, zlib-compressed per object, and a data
frame of character, numeric, logical and factor columns needs only a small part of that format.
The PyPI `rdata` package reads it too, but would bring pandas and xarray into the install for one
table. Format: R Internals, "Serialization formats"; the lazy-load index (.rdx) is a gzip RDS file
holding `variables`: name -> (offset, length) in the .rdb, where each object is a 4-byte
big-endian length followed by a zlib stream.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autow2s.errors import AutoW2SError

NILVALUE, REF, GLOBALENV, UNBOUND, MISSINGARG, BASENAMESPACE = 254, 255, 253, 252, 251, 250
NAMESPACE, PACKAGE, PERSIST, EMPTYENV, BASEENV, ATTRLANG, ATTRLIST, ALTREP = 249, 248, 247, 242, 241, 240, 239, 238
SYM, LIST, CLO, ENV, PROM, LANG, CHAR, LGL, INT, REAL, CPLX, STR, DOT, VEC, EXPR, BCODE, RAW, S4 = (
    1, 2, 3, 4, 5, 6, 9, 10, 13, 14, 15, 16, 17, 19, 20, 21, 24, 25)
NA_INTEGER = -(2**31)


@dataclass
class RObject:
    """An R value: `value` is a Python list for vectors, a dict for pairlists; attributes beside it."""

    kind: int
    value: Any
    attributes: dict[str, Any] = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0
        self.refs: list[Any] = []

    def ints(self, count: int) -> tuple[int, ...]:
        values = struct.unpack_from(f">{count}i", self.data, self.at)
        self.at += 4 * count
        return values

    def integer(self) -> int:
        return self.ints(1)[0]

    def length(self) -> int:
        n = self.integer()
        if n == -1:
            high, low = self.ints(2)
            n = (high << 32) + low
        return n

    def header(self) -> None:
        if self.data[:2] != b"X\n":
            raise AutoW2SError("not an XDR R serialisation (only the binary XDR format is read)")
        self.at = 2
        version = self.integer()
        self.ints(2)  # R version that wrote it, oldest that reads it
        if version == 3:
            skip = self.integer()  # the native encoding's name (read before `self.at` is, or it is lost)
            self.at += skip

    def item(self) -> Any:
        flags = self.integer()
        kind, has_attr, has_tag = flags & 0xFF, bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == NILVALUE or kind in (GLOBALENV, UNBOUND, MISSINGARG, BASENAMESPACE, EMPTYENV, BASEENV):
            return None
        if kind == REF:
            index = flags >> 8 or self.integer()
            return self.refs[index - 1]
        if kind == SYM:
            name = self.item()
            self.refs.append(name)
            return name
        if kind in (PACKAGE, NAMESPACE, PERSIST):
            self.integer()  # a string vector's 0 flag
            names = [self.item() for _ in range(self.integer())]
            self.refs.append(names)
            return names
        if kind == ENV:
            env = RObject(ENV, {})
            self.refs.append(env)
            self.integer()  # locked
            _enclosing, frame, hashtab, _attributes = (self.item() for _ in range(4))
            env.value = {"frame": frame, "hashtab": hashtab}
            return env
        if kind in (LIST, LANG, CLO, PROM, DOT, ATTRLANG, ATTRLIST):
            return self._pairlist(kind, has_attr, has_tag)
        if kind == CHAR:
            n = self.integer()
            if n == -1:
                return None
            text = self.data[self.at : self.at + n].decode("utf-8", errors="replace")
            self.at += n
            return text
        if kind == ALTREP:
            info, state, attributes = self.item(), self.item(), self.item()
            return self._altrep(info, state, attributes)
        if kind in (LGL, INT):
            n = self.length()
            value: Any = [None if v == NA_INTEGER else v for v in self.ints(n)]
        elif kind == REAL:
            n = self.length()
            value = list(struct.unpack_from(f">{n}d", self.data, self.at))
            self.at += 8 * n
        elif kind == STR:
            value = [self.item() for _ in range(self.length())]
        elif kind in (VEC, EXPR):
            value = [self.item() for _ in range(self.length())]
        elif kind == RAW:
            n = self.length()
            value = self.data[self.at : self.at + n]
            self.at += n
        elif kind == S4:
            value = None
        else:
            raise AutoW2SError(f"R object type {kind} is not read here (only data frames of plain columns are)")
        out = RObject(kind, value)
        if has_attr:
            out.attributes = self._attributes(self.item())
        return out

    def _pairlist(self, kind: int, has_attr: bool, has_tag: bool) -> RObject:
        attributes = self.item() if has_attr else None
        tag = self.item() if has_tag else None
        head = self.item()
        rest = self.item()
        items = {str(tag) if tag is not None else f"#{0}": head}
        if isinstance(rest, RObject) and rest.kind == LIST:
            for key, value in rest.value.items():
                items[key if not key.startswith("#") else f"#{len(items)}"] = value
        out = RObject(kind, items)
        if attributes is not None:
            out.attributes = self._attributes(attributes)
        return out

    @staticmethod
    def _attributes(pairlist: Any) -> dict[str, Any]:
        return dict(pairlist.value) if isinstance(pairlist, RObject) else {}

    @staticmethod
    def _altrep(info: Any, state: Any, attributes: Any) -> RObject:
        """The ALTREP classes R writes for plain data: compact integer/real sequences and deferred strings."""
        name = info.value.get("#0") if isinstance(info, RObject) else None
        if name in ("compact_intseq", "compact_realseq"):
            n, start, step = (state.value if isinstance(state, RObject) else state)[:3]
            kind = INT if name == "compact_intseq" else REAL
            return RObject(kind, [start + i * step for i in range(int(n))])
        if name == "deferred_string":
            original = state.value.get("#0") if isinstance(state, RObject) else None
            values = original.value if isinstance(original, RObject) else []
            return RObject(STR, [None if v is None else (str(int(v)) if float(v).is_integer() else repr(v))
                                 for v in values])
        if name in ("wrap_integer", "wrap_real", "wrap_string", "wrap_logical"):
            wrapped = state.value.get("#0") if isinstance(state, RObject) else None
            if isinstance(wrapped, RObject):
                return wrapped
        raise AutoW2SError(f"R ALTREP class {name!r} is not read here")


def _unserialize(data: bytes) -> Any:
    reader = _Reader(data)
    reader.header()
    return reader.item()


def lazyload_names(rdx: Path) -> list[str]:
    """The objects an R lazy-load store holds."""
    index = _unserialize(gzip.decompress(rdx.read_bytes()))
    return list(_variables(index))


def _variables(index: Any) -> dict[str, Any]:
    names = index.attributes.get("names", RObject(STR, [])).value
    variables = index.value[names.index("variables")]
    return dict(zip(variables.attributes["names"].value, variables.value))


def read_data_frame(rdx: Path, name: str) -> dict[str, list[Any]]:
    """One data frame of the store as {column: values}; factor columns come back as their level strings."""
    variables = _variables(_unserialize(gzip.decompress(rdx.read_bytes())))
    if name not in variables:
        raise AutoW2SError(f"{rdx}: no object {name!r}; it holds {', '.join(sorted(variables))}")
    offset, length = (int(v) for v in variables[name].value)
    with rdx.with_suffix(".rdb").open("rb") as handle:
        handle.seek(offset)
        blob = handle.read(length)
    frame = _unserialize(zlib.decompress(blob[4:]))
    if not isinstance(frame, RObject) or frame.kind != VEC or "names" not in frame.attributes:
        raise AutoW2SError(f"{rdx}: {name!r} is not a data frame")
    columns: dict[str, list[Any]] = {}
    for column, vector in zip(frame.attributes["names"].value, frame.value):
        values = vector.value
        levels = vector.attributes.get("levels")
        if levels is not None:  # a factor: 1-based codes into its levels
            values = [None if code is None else levels.value[code - 1] for code in values]
        columns[column] = values
    return columns
