"""dshost strategy helpers for componentize-py.

A strategy is a module that defines ``class Handler(wit_world.exports.Handler)``
with ``describe``, ``configure`` and ``process``; componentize-py turns it into
a component of the ``strategy`` world (see README.md and template/).

This module gives the pieces every strategy needs, behaving like the Rust SDK
(``sdk/rust``) so that a strategy ported between languages gives the same
results and the same error messages:

- :func:`objects`: a typed view over the compact objects buffer (32-byte
  little-endian records, decoded with ``struct`` straight from the
  ``bytes``/``memoryview`` the host passes).
- :func:`detect`: a detection builder.
- :func:`parse_config` and the field converters: JSON config with errors
  worded like the Rust SDK's (serde), without serde's ``at line L column C``.
- :func:`f32`, :func:`fmt_f32`, :class:`Polygon`, :func:`normalize`:
  single-precision arithmetic, so comparisons and zone tests agree bit for
  bit with strategies written in Rust or C (which compute in ``f32``).

Contract versions: built against ``wit/`` (``dshost:strategy@0.2.0``),
``process`` must return packed detections; this module then wraps the
``process`` of every ``exports.Handler`` subclass so that it packs the list
the author returns (:func:`pack`). Built against ``wit/0.1.0/`` the list is
returned as it is. Either way a strategy returns a list of detections.
"""

import json
import struct
from collections import namedtuple
from decimal import Decimal

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import host, types

__all__ = [
    "RECORD_SIZE", "UNTRACKED", "Object", "objects", "detect", "info", "log", "Level", "LogLevel",
    "parse_config", "ConfigError", "F32", "U32", "STRING", "optional", "seq", "array", "variant", "untagged",
    "class_id", "label_of", "f32", "fmt_f32", "normalize", "Polygon", "Err", "pack", "PACKED",
]

#: Size of one object record in bytes.
RECORD_SIZE = 32
#: Object id of an object that no tracker has given an id.
UNTRACKED = 0xFFFF_FFFF_FFFF_FFFF

Level = types.Level
LogLevel = host.LogLevel

_RECORD = struct.Struct("<fffffIQ")
_F32 = struct.Struct("<f")
# Packed detection record of contract 0.2.0: box, confidence, pattern index,
# level, flags (bit 0: object id present), object id.
_PACKED_RECORD = struct.Struct("<fffffHBBQ")
_PACKED_RECORD_SIZE = 32

#: Whether this build implements contract 0.2.0 (packed detections).
PACKED = hasattr(types, "PackedDetections")


def f32(value):
    """Rounds a Python float to the nearest single-precision value (as Rust's
    ``as f32`` does, overflowing to infinity)."""
    try:
        return _F32.unpack(_F32.pack(value))[0]
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def fmt_f32(value):
    """Formats a single-precision number as Rust's ``{}`` does: the shortest
    digits that read back as the same ``f32``, in plain decimal notation."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    for digits in range(1, 10):
        text = "%.*g" % (digits, value)
        if f32(float(text)) == value:
            break
    plain = format(Decimal(text), "f")
    if "." in plain:
        plain = plain.rstrip("0").rstrip(".")
    return "-0" if plain in ("0", "-0") and str(value).startswith("-") else plain


class Object(namedtuple("Object", "left top width height confidence class_id object_id")):
    """One decoded object record (pixels; ``object_id`` is raw, see :meth:`track_id`)."""

    __slots__ = ()

    def track_id(self):
        """The tracker's id, or ``None`` for an untracked object."""
        return None if self.object_id == UNTRACKED else self.object_id

    def bottom_center(self):
        """Bottom-centre point (where a person touches the ground), in f32."""
        return (f32(self.left + f32(self.width / 2.0)), f32(self.top + self.height))

    def center(self):
        """Centre point, in f32."""
        return (f32(self.left + f32(self.width / 2.0)), f32(self.top + f32(self.height / 2.0)))


def objects(buffer):
    """Decodes the objects buffer into a list of :class:`Object`, in buffer order.

    Raises ``Err`` (the host counts it as a failed call) when the buffer does
    not hold whole records."""
    if len(buffer) % RECORD_SIZE:
        raise Err(f"objects buffer of {len(buffer)} bytes is not a multiple of the {RECORD_SIZE}-byte record size")
    make = Object._make
    return [make(record) for record in _RECORD.iter_unpack(memoryview(buffer))]


def info(name, version, description, classes=(), needs_tracking=False):
    """A ``StrategyInfo`` (what ``describe`` returns)."""
    return types.StrategyInfo(name, version, description, list(classes), needs_tracking)


def log(level, message):
    """Writes a line to the host log (rate-limited by the host)."""
    host.log(level, message)


class DetectionBuilder:
    """Builds a ``Detection``; start with :func:`detect`."""

    __slots__ = ("pattern", "_confidence", "_bbox", "_object_id", "_level", "_attributes")

    def __init__(self, pattern):
        self.pattern = pattern
        self._confidence = 1.0
        self._bbox = (0.0, 0.0, 0.0, 0.0)
        self._object_id = None
        self._level = Level.MEDIUM
        self._attributes = []

    def from_object(self, obj):
        """Copies box, confidence and object id from an :class:`Object`."""
        self._bbox = (obj.left, obj.top, obj.width, obj.height)
        self._confidence = obj.confidence
        self._object_id = obj.track_id()
        return self

    def confidence(self, confidence):
        self._confidence = confidence
        return self

    def bbox(self, left, top, width, height):
        self._bbox = (left, top, width, height)
        return self

    def object_id(self, object_id):
        self._object_id = object_id
        return self

    def level(self, level):
        self._level = level
        return self

    def attribute(self, key, value):
        self._attributes.append((str(key), str(value)))
        return self

    def build(self):
        return types.Detection(
            self.pattern, self._confidence, types.Bbox(*self._bbox), self._object_id, self._level, self._attributes
        )


def detect(pattern):
    """Starts a detection named ``pattern``; finish it with ``.build()``."""
    return DetectionBuilder(pattern)


def pack(detections):
    """Packs a list of ``Detection`` into contract 0.2.0's ``PackedDetections``:
    one 32-byte record each, every distinct pattern once, attributes tagged
    with their record (see ``wit/strategy.wit``)."""
    count = len(detections)
    records = bytearray(count * _PACKED_RECORD_SIZE)
    patterns = []
    index = {}
    attributes = []
    pack_into = _PACKED_RECORD.pack_into
    for at, d in enumerate(detections):
        pattern = d.pattern
        slot = index.get(pattern)
        if slot is None:
            slot = index[pattern] = len(patterns)
            if slot > 0xFFFF:
                raise Err(f"more than {0xFFFF + 1} distinct patterns in one frame")
            patterns.append(pattern)
        b = d.bbox
        object_id = d.object_id
        pack_into(
            records, at * _PACKED_RECORD_SIZE, b.left, b.top, b.width, b.height, d.confidence, slot, d.level.value,
            0 if object_id is None else 1, 0 if object_id is None else object_id,
        )
        for key, value in d.attributes:
            attributes.append(types.Attribute(at, key, value))
    return types.PackedDetections(bytes(records), patterns, attributes)


if PACKED:
    # Every `class Handler(exports.Handler)` gets its `process` wrapped so
    # that it packs what the author returns: the same strategy source builds
    # against either contract version.
    def _packing_subclass(cls, **kwargs):
        super(exports.Handler, cls).__init_subclass__(**kwargs)
        process = cls.__dict__.get("process")
        if process is None or getattr(process, "_dshost_packs", False):
            return

        def packed_process(self, frame, objects):
            return pack(process(self, frame, objects))

        packed_process._dshost_packs = True
        packed_process.__doc__ = process.__doc__
        cls.process = packed_process

    exports.Handler.__init_subclass__ = classmethod(_packing_subclass)


def class_id(context, label):
    """The class id of ``label`` in the host's label table; raises
    :class:`ConfigError` naming the label and listing the known ones."""
    try:
        return context.class_labels.index(label)
    except ValueError:
        raise ConfigError(f"unknown label `{label}`; the host knows: {', '.join(context.class_labels)}") from None


def label_of(context, class_id_):
    """The label of a class id, or ``None``."""
    labels = context.class_labels
    return labels[class_id_] if 0 <= class_id_ < len(labels) else None


def normalize(point, frame_width, frame_height):
    """Pixel point to normalized 0..1 frame coordinates (f32, like the Rust SDK)."""
    w = float(max(frame_width, 1))
    h = float(max(frame_height, 1))
    return (f32(point[0] / f32(w)), f32(point[1] / f32(h)))


class Polygon:
    """A simple polygon (at least three vertices, implicitly closed); the
    even-odd test runs in f32 like the Rust SDK's ``Polygon``."""

    __slots__ = ("vertices",)

    def __init__(self, vertices):
        vertices = [(f32(x), f32(y)) for x, y in vertices]
        if len(vertices) < 3:
            raise ConfigError(f"a polygon needs at least 3 points, got {len(vertices)}")
        for x, y in vertices:
            if x - x != 0.0 or y - y != 0.0:
                raise ConfigError("polygon coordinates must be finite numbers")
        self.vertices = vertices

    def contains(self, point):
        px, py = point
        inside = False
        vertices = self.vertices
        xj, yj = vertices[-1]
        for xi, yi in vertices:
            if (yi > py) != (yj > py):
                # Every step rounded to f32, as the Rust and C strategies compute.
                edge_x = f32(f32(f32(f32(xj - xi) * f32(py - yi)) / f32(yj - yi)) + xi)
                if px < edge_x:
                    inside = not inside
            xj, yj = xi, yi
        return inside


# --- config -----------------------------------------------------------------


class ConfigError(Exception):
    """A config problem; ``configure`` turns it into the ``err`` the host shows."""


def _debug_str(text):
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped.replace("\t", "\\t") + '"'


def _unexpected(value):
    """How serde names a JSON value it did not expect."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value!r}`"
    if isinstance(value, str):
        return "string " + _debug_str(value)
    if isinstance(value, list):
        return "sequence"
    return "map"


def _invalid_type(value, expected):
    return ConfigError(f"invalid type: {_unexpected(value)}, expected {expected}")


def F32(value):
    """A number, rounded to f32 (integers are accepted, as serde does)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid_type(value, "f32")
    return f32(float(value))


def U32(value):
    """A whole number within 0..=4294967295."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(value, "u32")
    if not 0 <= value <= 0xFFFF_FFFF:
        raise ConfigError(f"invalid value: integer `{value}`, expected u32")
    return value


def STRING(value):
    if not isinstance(value, str):
        raise _invalid_type(value, "a string")
    return value


def optional(convert):
    """``null`` or absent is ``None``; anything else goes through ``convert``."""

    def optional_(value):
        return None if value is None else convert(value)

    return optional_


def seq(convert):
    """A list whose items go through ``convert``."""

    def seq_(value):
        if not isinstance(value, list):
            raise _invalid_type(value, "a sequence")
        return [convert(item) for item in value]

    return seq_


def array(convert, length):
    """A list of exactly ``length`` items (serde's ``[T; N]``)."""

    def array_(value):
        if not isinstance(value, list):
            raise _invalid_type(value, f"an array of length {length}")
        if len(value) < length:
            raise ConfigError(f"invalid length {len(value)}, expected an array of length {length}")
        if len(value) > length:
            raise ConfigError("trailing characters")
        return [convert(item) for item in value]

    return array_


def variant(*names):
    """One of ``names`` (a Rust enum of unit variants)."""
    expected = ", ".join(f"`{n}`" for n in names)

    def variant_(value):
        if not isinstance(value, str):
            raise ConfigError("expected value")
        if value not in names:
            raise ConfigError(f"unknown variant `{value}`, expected one of {expected}")
        return value

    return variant_


def untagged(name, *converts):
    """The first of ``converts`` that accepts the value (serde's untagged enum ``name``)."""

    def untagged_(value):
        for convert in converts:
            try:
                return convert(value)
            except ConfigError:
                continue
        raise ConfigError(f"data did not match any variant of untagged enum {name}")

    return untagged_


def parse_config(text, fields, struct_name="Config"):
    """Parses the JSON config against ``fields`` ({key: converter}, in
    declaration order). Returns {key: converted value} for the keys present.

    Like the Rust SDK: empty text is ``{}``; unknown keys are errors; keys are
    checked in document order and the first problem is reported, as
    ``invalid config: ...``. Raises ``Err`` for ``configure`` to return."""
    if not text.strip():
        text = "{}"
    try:
        document = json.loads(text)
    except ValueError as error:
        raise Err(f"invalid config: {error}") from None
    if not isinstance(document, dict):
        raise Err(f"invalid config: invalid type: {_unexpected(document)}, expected struct {struct_name}")
    values = {}
    for key, value in document.items():
        convert = fields.get(key)
        if convert is None:
            if len(fields) == 1:
                raise Err(f"invalid config: unknown field `{key}`, expected `{next(iter(fields))}`")
            known = ", ".join(f"`{k}`" for k in fields)
            raise Err(f"invalid config: unknown field `{key}`, expected one of {known}")
        try:
            values[key] = convert(value)
        except ConfigError as error:
            raise Err(f"invalid config: {error}") from None
    return values
