"""The one canonical encoding, for the wire and for hashing.

Canonical msgpack: integers in the signed 64-bit range (msgpack already picks
the shortest form), no floats, UTF-8 strings, bytes as bin, tuples and lists
as arrays, maps with keys sorted. ``decode(..., canonical=True)`` refuses bytes
that are not exactly what ``encode`` would produce, so two nodes can never hash
two spellings of one value differently.

Typed messages (commands, events, consensus messages) are frozen dataclasses
registered in a ``Registry`` with a small integer tag and travel as
``[tag, field, field, ...]``. Field types are read from the annotations once,
at registration, and turned into converters; nested registered dataclasses,
fixed-point values, enums, tuples and optionals are supported. Never pickle.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any

import msgpack

from deltasync.core.errors import CodecError, DeltasyncError
from deltasync.core.fixed import INT64_MAX, INT64_MIN, _Fixed
from deltasync.core.limits import frame_bytes_max

_ATOMS = (type(None), bool, int, str, bytes)


def _canonical(value: Any) -> Any:
    """Validate and normalise a plain value tree (sorting map keys)."""
    kind = type(value)
    if kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            raise CodecError(reason="integer out of int64 range", value=value)
        return value
    if kind in _ATOMS:
        return value
    if kind is list or kind is tuple:
        return [_canonical(item) for item in value]
    if kind is dict:
        keys = list(value)
        if keys and not (
            all(type(key) is str for key in keys) or all(type(key) is int for key in keys)
        ):
            raise CodecError(reason="map keys must be all str or all int", keys=keys[:4])
        return {key: _canonical(value[key]) for key in sorted(keys)}
    raise CodecError(reason="type not encodable", type=kind.__name__)


def encode(value: Any) -> bytes:
    """Canonical bytes of a plain value tree (None, bool, int, str, bytes, list, dict).

    A string that is not valid Unicode text (a lone surrogate such as ``"\\ud800"``,
    which JSON can spell) has no UTF-8 form: it is refused like any other value
    the codec cannot carry."""
    try:
        return msgpack.packb(_canonical(value), use_bin_type=True)
    except UnicodeEncodeError as exc:
        raise CodecError(reason="string is not valid UTF-8 (lone surrogate)",
                         position=exc.start) from None


def encode_trusted(value: Any) -> bytes:
    """Encode a value already known to be canonical (hot path: no validation pass).

    The caller guarantees: no floats, ints within int64, no dicts (or dicts
    built in sorted key order).
    """
    return msgpack.packb(value, use_bin_type=True)


def decode(data: bytes, *, canonical: bool = False, max_bytes: int = frame_bytes_max) -> Any:
    """Decode msgpack bytes; with ``canonical`` also refuse non-canonical spellings."""
    if len(data) > max_bytes:
        raise CodecError(reason="message too large", size=len(data), max=max_bytes)
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=False,
        )
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
        raise CodecError(reason="malformed msgpack", detail=str(exc)) from None
    except Exception as exc:  # msgpack raises assorted types on hostile input
        raise CodecError(reason="malformed msgpack", detail=repr(exc)) from None
    if canonical and encode(value) != data:
        raise CodecError(reason="non-canonical encoding")
    return value


# --- typed messages --------------------------------------------------------

Converter = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _checked_atom(kind: type) -> Converter:
    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise CodecError(reason="wrong field type", expected=kind.__name__, got=type(value).__name__)
        return value

    return check


class Registry:
    """Maps frozen dataclasses to integer tags and back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._by_tag: dict[int, type] = {}
        self._tag_of: dict[type, int] = {}
        self._to_wire: dict[type, tuple[tuple[str, Converter | None], ...]] = {}
        self._from_wire: dict[type, tuple[Converter, ...]] = {}
        self._pending: list[type] = []

    def register(self, tag: int) -> Callable[[type], type]:
        def decorate(cls: type) -> type:
            assert dataclasses.is_dataclass(cls), f"{cls} must be a dataclass"
            assert tag not in self._by_tag, f"{self.name}: tag {tag} reused by {cls.__name__}"
            assert 0 <= tag < 2**16
            self._by_tag[tag] = cls
            self._tag_of[cls] = tag
            self._pending.append(cls)
            return cls

        return decorate

    def tag_of(self, cls: type) -> int:
        return self._tag_of[cls]

    def classes(self) -> list[type]:
        return [self._by_tag[tag] for tag in sorted(self._by_tag)]

    def _resolve(self) -> None:
        # Annotations are resolved lazily so classes may refer to ones defined later.
        while self._pending:
            cls = self._pending.pop()
            hints = typing.get_type_hints(cls)
            fields = dataclasses.fields(cls)
            self._to_wire[cls] = tuple(
                (f.name, None if (c := self._converter(hints[f.name], True)) is _identity else c)
                for f in fields
            )
            self._from_wire[cls] = tuple(self._converter(hints[f.name], False) for f in fields)

    def _converter(self, hint: Any, outbound: bool) -> Converter:
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            assert len(inner) == 1, f"only Optional[X] unions are supported, got {hint}"
            convert = self._converter(inner[0], outbound)
            if convert is _identity:
                return _identity
            return lambda value: None if value is None else convert(value)
        if origin is tuple:
            args = typing.get_args(hint)
            assert len(args) == 2 and args[1] is Ellipsis, f"use tuple[X, ...], got {hint}"
            convert = self._converter(args[0], outbound)
            if outbound:
                return lambda value: [convert(item) for item in value]
            return lambda value: tuple(convert(item) for item in value)
        if isinstance(hint, type) and issubclass(hint, _Fixed):
            fixed_cls = hint
            return (lambda value: value.raw) if outbound else (lambda value: fixed_cls(value))
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            if outbound:
                return lambda value: value.value
            # a dict lookup is ~10x cheaper than EnumType.__call__; the key's type is
            # checked too, so True never stands in for 1
            members = {(type(m.value), m.value): m for m in hint}
            return lambda value: members[(type(value), value)]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            assert hint in self._tag_of, f"{hint.__name__} is not registered in {self.name}"
            return self.to_wire if outbound else self.from_wire
        if hint is Any:
            return _identity
        if hint in (int, str, bytes, bool):
            return _identity if outbound else _checked_atom(hint)
        if typing.get_origin(hint) is dict or hint is dict:
            return _identity
        raise AssertionError(f"{self.name}: unsupported field type {hint!r}")

    def to_wire(self, obj: Any) -> list[Any]:
        cls = type(obj)
        converters = self._to_wire.get(cls)
        if converters is None:
            self._resolve()
            converters = self._to_wire[cls]
        out: list[Any] = [self._tag_of[cls]]
        for name, convert in converters:
            value = getattr(obj, name)
            out.append(value if convert is None else convert(value))
        return out

    def from_wire(self, wire: Any) -> Any:
        if type(wire) is not list or not wire or type(wire[0]) is not int:
            raise CodecError(registry=self.name, reason="expected [tag, fields...]")
        cls = self._by_tag.get(wire[0])
        if cls is None:
            raise CodecError(registry=self.name, reason="unknown tag", tag=wire[0])
        converters = self._from_wire.get(cls)
        if converters is None:
            self._resolve()
            converters = self._from_wire[cls]
        if len(wire) != len(converters) + 1:
            raise CodecError(
                registry=self.name,
                reason="wrong field count",
                type=cls.__name__,
                got=len(wire) - 1,
                expected=len(converters),
            )
        try:
            return cls(*(convert(value) for convert, value in zip(converters, wire[1:], strict=True)))
        except CodecError:
            raise
        except (TypeError, ValueError, KeyError, AssertionError, DeltasyncError) as exc:
            raise CodecError(
                registry=self.name, reason="invalid field", type=cls.__name__, detail=str(exc)
            ) from None

    def encode(self, obj: Any) -> bytes:
        return encode(self.to_wire(obj))

    def decode(self, data: bytes, *, canonical: bool = False) -> Any:
        return self.from_wire(decode(data, canonical=canonical))
