// dshost strategy helpers for JavaScript components (componentize-qjs or
// componentize-js). A strategy module exports `handler` with `describe`,
// `configure` and `process`; see README.md and template/.
//
// Everything here behaves like the Rust SDK (sdk/rust) so that a strategy
// ported between languages gives the same results and error messages:
// - objects(): typed view over the compact objects buffer, decoded with
//   DataView straight from the Uint8Array the host passes;
// - detect(): detection builder;
// - parseConfig() and the field converters: JSON config with errors worded
//   like serde's (without its "at line L column C");
// - f32 (Math.fround), fmtF32, Polygon, normalize: single-precision
//   arithmetic, so comparisons and zone tests match Rust and C bit for bit.

/** Size of one object record in bytes. */
export const RECORD_SIZE = 32;

/** Rounds to the nearest f32, as Rust's `as f32`. */
export const f32 = Math.fround;

/**
 * Object ids are u64. componentize-js (StarlingMonkey) passes u64 as BigInt;
 * componentize-qjs as Number (exact up to 2^53). `setBigIntIds` picks the
 * representation detections carry; the build template sets it per toolchain.
 */
let bigIntIds = false;
export function setBigIntIds(on) {
  bigIntIds = on;
}

/** One decoded object record; `objectId` is null when untracked. */
export class DsObject {
  constructor(left, top, width, height, confidence, classId, objectId) {
    this.left = left;
    this.top = top;
    this.width = width;
    this.height = height;
    this.confidence = confidence;
    this.classId = classId;
    this.objectId = objectId;
  }

  /** Bottom-centre point (where a person touches the ground), in f32. */
  bottomCenter() {
    return [f32(this.left + f32(this.width / 2)), f32(this.top + this.height)];
  }

  /** Centre point, in f32. */
  center() {
    return [f32(this.left + f32(this.width / 2)), f32(this.top + f32(this.height / 2))];
  }
}

/**
 * Decodes the objects buffer (Uint8Array) into an array of DsObject, in
 * buffer order. Throws (a failed call for the host) when the buffer does not
 * hold whole records.
 */
export function objects(bytes) {
  const length = bytes.byteLength;
  if (length % RECORD_SIZE !== 0) {
    throw `objects buffer of ${length} bytes is not a multiple of the ${RECORD_SIZE}-byte record size`;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, length);
  const out = new Array(length / RECORD_SIZE);
  for (let at = 0, i = 0; at < length; at += RECORD_SIZE, i++) {
    const low = view.getUint32(at + 24, true);
    const high = view.getUint32(at + 28, true);
    let id = null;
    if (low !== 0xffffffff || high !== 0xffffffff) {
      id = bigIntIds ? (BigInt(high) << 32n) | BigInt(low) : high * 4294967296 + low;
    }
    out[i] = new DsObject(
      view.getFloat32(at, true),
      view.getFloat32(at + 4, true),
      view.getFloat32(at + 8, true),
      view.getFloat32(at + 12, true),
      view.getFloat32(at + 16, true),
      view.getUint32(at + 20, true),
      id,
    );
  }
  return out;
}

/** A strategy-info record (what `describe` returns). */
export function info(name, version, description, classes = [], needsTracking = false) {
  return { name, version, description, classes, needsTracking };
}

class DetectionBuilder {
  constructor(pattern) {
    this.detection = {
      pattern,
      confidence: 1,
      bbox: { left: 0, top: 0, width: 0, height: 0 },
      objectId: undefined,
      level: "medium",
      attributes: [],
    };
  }

  /** Copies box, confidence and object id from a DsObject. */
  fromObject(object) {
    const d = this.detection;
    d.bbox = { left: object.left, top: object.top, width: object.width, height: object.height };
    d.confidence = object.confidence;
    d.objectId = object.objectId === null ? undefined : object.objectId;
    return this;
  }

  confidence(value) {
    this.detection.confidence = value;
    return this;
  }

  bbox(left, top, width, height) {
    this.detection.bbox = { left, top, width, height };
    return this;
  }

  objectId(id) {
    this.detection.objectId = id === null ? undefined : id;
    return this;
  }

  /** "low" | "medium" | "high" | "critical" */
  level(level) {
    this.detection.level = level;
    return this;
  }

  attribute(key, value) {
    this.detection.attributes.push([String(key), String(value)]);
    return this;
  }

  build() {
    return this.detection;
  }
}

/** Starts a detection named `pattern`; finish it with `.build()`. */
export function detect(pattern) {
  return new DetectionBuilder(pattern);
}

const PACKED_RECORD_SIZE = 32;
const LEVEL_CODES = { low: 0, medium: 1, high: 2, critical: 3 };

/**
 * Packs an array of detections into contract 0.2.0's `packed-detections`:
 * one 32-byte little-endian record each (box, confidence, pattern index,
 * level, flags, object id), every distinct pattern once, attributes tagged
 * with their record (see wit/strategy.wit).
 */
export function pack(detections) {
  const count = detections.length;
  const records = new Uint8Array(count * PACKED_RECORD_SIZE);
  const view = new DataView(records.buffer);
  const patterns = [];
  const index = new Map();
  const attributes = [];
  for (let i = 0, at = 0; i < count; i++, at += PACKED_RECORD_SIZE) {
    const d = detections[i];
    let slot = index.get(d.pattern);
    if (slot === undefined) {
      slot = patterns.length;
      if (slot > 0xffff) throw `more than ${0xffff + 1} distinct patterns in one frame`;
      index.set(d.pattern, slot);
      patterns.push(d.pattern);
    }
    const b = d.bbox;
    view.setFloat32(at, b.left, true);
    view.setFloat32(at + 4, b.top, true);
    view.setFloat32(at + 8, b.width, true);
    view.setFloat32(at + 12, b.height, true);
    view.setFloat32(at + 16, d.confidence, true);
    view.setUint16(at + 20, slot, true);
    const level = LEVEL_CODES[d.level];
    if (level === undefined) throw `unknown level ${JSON.stringify(d.level)}; use low, medium, high or critical`;
    view.setUint8(at + 22, level);
    const id = d.objectId;
    if (id !== undefined && id !== null) {
      view.setUint8(at + 23, 1);
      if (typeof id === "bigint") {
        view.setBigUint64(at + 24, id, true);
      } else {
        view.setUint32(at + 24, id % 4294967296, true);
        view.setUint32(at + 28, Math.floor(id / 4294967296), true);
      }
    }
    for (const [key, value] of d.attributes ?? []) {
      attributes.push({ detection: i, key, value });
    }
  }
  return { records, patterns, attributes };
}

/**
 * For builds against contract 0.2.0 (wit/): a handler whose `process` packs
 * the array the strategy's own `process` returns. The SDK's build scripts
 * export `packedHandler(handler)` in place of the strategy's `handler`, so the
 * strategy source is the same for both contract versions.
 */
export function packedHandler(handler) {
  // Every call goes to the strategy's own object, so `this` stays the same.
  return {
    describe() {
      return handler.describe();
    },
    configure(config, context) {
      return handler.configure(config, context);
    },
    process(frame, objects) {
      return pack(handler.process(frame, objects));
    },
  };
}

/** A config problem; strategies turn it into the error `configure` throws. */
export class ConfigError extends Error {}

/** The class id of `label`; throws ConfigError naming it and the known labels. */
export function classId(context, label) {
  const id = context.classLabels.indexOf(label);
  if (id < 0) {
    throw new ConfigError(`unknown label \`${label}\`; the host knows: ${context.classLabels.join(", ")}`);
  }
  return id;
}

/** The label of a class id, or undefined. */
export function labelOf(context, id) {
  return context.classLabels[id];
}

/** Rust's `{}` for an f32: shortest round-tripping digits, plain decimal. */
export function fmtF32(value) {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "inf";
  if (value === -Infinity) return "-inf";
  let text = "";
  for (let digits = 1; digits <= 9; digits++) {
    text = value.toPrecision(digits);
    if (f32(Number(text)) === value) break;
  }
  return plainDecimal(text, Object.is(value, -0));
}

function plainDecimal(text, negativeZero) {
  let sign = "";
  if (text[0] === "-") {
    sign = "-";
    text = text.slice(1);
  }
  let [mantissa, exponent] = text.split("e");
  let exp = exponent === undefined ? 0 : Number(exponent);
  let [whole, frac = ""] = mantissa.split(".");
  let digits = whole + frac;
  let point = whole.length + exp;
  let out;
  if (point <= 0) out = "0." + "0".repeat(-point) + digits;
  else if (point >= digits.length) out = digits + "0".repeat(point - digits.length);
  else out = digits.slice(0, point) + "." + digits.slice(point);
  if (out.includes(".")) out = out.replace(/0+$/, "").replace(/\.$/, "");
  out = out.replace(/^0+(?=\d)/, "");
  if (out === "0") return negativeZero ? "-0" : "0";
  return sign + out;
}

/** Pixel point to normalized 0..1 frame coordinates (f32, like the Rust SDK). */
export function normalize(point, frameWidth, frameHeight) {
  const w = f32(Math.max(frameWidth, 1));
  const h = f32(Math.max(frameHeight, 1));
  return [f32(point[0] / w), f32(point[1] / h)];
}

/** A simple polygon (>= 3 vertices, implicitly closed); even-odd test in f32. */
export class Polygon {
  constructor(vertices) {
    const points = vertices.map(([x, y]) => [f32(x), f32(y)]);
    if (points.length < 3) {
      throw new ConfigError(`a polygon needs at least 3 points, got ${points.length}`);
    }
    if (points.some(([x, y]) => !Number.isFinite(x) || !Number.isFinite(y))) {
      throw new ConfigError("polygon coordinates must be finite numbers");
    }
    this.vertices = points;
  }

  contains([px, py]) {
    const v = this.vertices;
    let inside = false;
    let [xj, yj] = v[v.length - 1];
    for (const [xi, yi] of v) {
      // Every step rounded to f32, as the Rust and C strategies compute.
      if (yi > py !== yj > py && px < f32(f32(f32(f32(xj - xi) * f32(py - yi)) / f32(yj - yi)) + xi)) {
        inside = !inside;
      }
      xj = xi;
      yj = yi;
    }
    return inside;
  }
}

// --- config ------------------------------------------------------------------

function debugString(text) {
  return (
    '"' +
    text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\t/g, "\\t") +
    '"'
  );
}

/** How serde names a JSON value it did not expect. */
function unexpected(value) {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return `boolean \`${value}\``;
    case "number":
      return Number.isInteger(value) ? `integer \`${value}\`` : `floating point \`${value}\``;
    case "string":
      return "string " + debugString(value);
    default:
      return Array.isArray(value) ? "sequence" : "map";
  }
}

function invalidType(value, expected) {
  return new ConfigError(`invalid type: ${unexpected(value)}, expected ${expected}`);
}

/** A number, rounded to f32 (integers accepted, as serde does). */
export function F32(value) {
  if (typeof value !== "number") throw invalidType(value, "f32");
  return f32(value);
}

/**
 * A whole number within 0..=4294967295. JSON.parse cannot tell `5` from
 * `5.0`, so unlike Rust and Python, `5.0` is accepted as 5.
 */
export function U32(value) {
  if (typeof value !== "number" || !Number.isInteger(value)) throw invalidType(value, "u32");
  if (value < 0 || value > 0xffffffff) throw new ConfigError(`invalid value: integer \`${value}\`, expected u32`);
  return value;
}

export function STRING(value) {
  if (typeof value !== "string") throw invalidType(value, "a string");
  return value;
}

/** null or absent is null; anything else goes through `convert`. */
export function optional(convert) {
  return (value) => (value === null ? null : convert(value));
}

/** An array whose items go through `convert`. */
export function seq(convert) {
  return (value) => {
    if (!Array.isArray(value)) throw invalidType(value, "a sequence");
    return value.map(convert);
  };
}

/** An array of exactly `length` items (serde's `[T; N]`). */
export function array(convert, length) {
  return (value) => {
    if (!Array.isArray(value)) throw invalidType(value, `an array of length ${length}`);
    if (value.length < length) {
      throw new ConfigError(`invalid length ${value.length}, expected an array of length ${length}`);
    }
    if (value.length > length) throw new ConfigError("trailing characters");
    return value.map(convert);
  };
}

/** One of `names` (a Rust enum of unit variants). */
export function variant(...names) {
  const expected = names.map((n) => `\`${n}\``).join(", ");
  return (value) => {
    if (typeof value !== "string") throw new ConfigError("expected value");
    if (!names.includes(value)) throw new ConfigError(`unknown variant \`${value}\`, expected one of ${expected}`);
    return value;
  };
}

/** The first of `converts` that accepts the value (serde's untagged enum `name`). */
export function untagged(name, ...converts) {
  return (value) => {
    for (const convert of converts) {
      try {
        return convert(value);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
      }
    }
    throw new ConfigError(`data did not match any variant of untagged enum ${name}`);
  };
}

/**
 * Parses the JSON config against `fields` ({key: converter}, in declaration
 * order) and returns {key: value} for the keys present. Like the Rust SDK:
 * empty text is {}, unknown keys are errors, keys are checked in document
 * order and the first problem is thrown as the string `invalid config: ...`
 * (a thrown string is the `err` of `configure`).
 */
export function parseConfig(text, fields, structName = "Config") {
  let document;
  try {
    document = JSON.parse(text.trim() === "" ? "{}" : text);
  } catch (error) {
    throw `invalid config: ${error.message}`;
  }
  if (document === null || typeof document !== "object" || Array.isArray(document)) {
    throw `invalid config: invalid type: ${unexpected(document)}, expected struct ${structName}`;
  }
  const known = Object.keys(fields);
  const values = {};
  for (const key of Object.keys(document)) {
    if (!Object.prototype.hasOwnProperty.call(fields, key)) {
      if (known.length === 1) throw `invalid config: unknown field \`${key}\`, expected \`${known[0]}\``;
      throw `invalid config: unknown field \`${key}\`, expected one of ${known.map((k) => `\`${k}\``).join(", ")}`;
    }
    try {
      values[key] = fields[key](document[key]);
    } catch (error) {
      if (error instanceof ConfigError) throw `invalid config: ${error.message}`;
      throw error;
    }
  }
  return values;
}
