// yolo_filter in JavaScript: keeps the detector's objects that match class,
// confidence, size and (optionally) a polygon zone, and reports one detection
// per kept object. The same config, errors and detections as the Rust
// strategies/yolo_filter (see its README).

import * as ds from "./dshost_strategy.js";

const VERSION = "0.1.0";

const FIELDS = {
  classes: ds.seq(ds.untagged("ClassRef", ds.U32, ds.STRING)),
  min_confidence: ds.F32,
  min_width: ds.F32,
  min_height: ds.F32,
  zone: ds.optional(ds.seq(ds.array(ds.F32, 2))),
  pattern: ds.optional(ds.STRING),
  level: ds.optional(ds.variant("low", "medium", "high", "critical")),
};

function prefixed(key, fn) {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ds.ConfigError) throw `\`${key}\`: ${error.message}`;
    throw error;
  }
}

class Filter {
  constructor(config, context) {
    const values = ds.parseConfig(config, FIELDS);
    this.minConfidence = values.min_confidence ?? ds.f32(0.5);
    this.minWidth = values.min_width ?? 0;
    this.minHeight = values.min_height ?? 0;
    if (!(this.minConfidence >= 0 && this.minConfidence <= 1)) {
      throw `\`min_confidence\` must be within 0..=1, got ${ds.fmtF32(this.minConfidence)}`;
    }
    if (!(this.minWidth >= 0 && this.minHeight >= 0)) {
      throw "`min_width` and `min_height` must be zero or positive";
    }
    // null keeps every class; otherwise the set of kept class ids.
    this.keep = null;
    const classes = values.classes ?? [];
    if (classes.length > 0) {
      this.keep = new Set();
      for (const ref of classes) {
        this.keep.add(typeof ref === "string" ? prefixed("classes", () => ds.classId(context, ref)) : ref);
      }
    }
    this.zone = values.zone == null ? null : prefixed("zone", () => new ds.Polygon(values.zone));
    this.pattern = values.pattern ?? null;
    if (this.pattern === "") throw "`pattern` must not be empty";
    this.level = values.level ?? "medium";
    this.labels = context.classLabels.slice();
  }

  patternFor(classId) {
    if (this.pattern !== null) return this.pattern;
    const label = this.labels[classId];
    return label ? label : `class_${classId}`;
  }

  process(frame, bytes) {
    const found = [];
    for (const object of ds.objects(bytes)) {
      if (
        object.confidence < this.minConfidence ||
        object.width < this.minWidth ||
        object.height < this.minHeight ||
        (this.keep !== null && !this.keep.has(object.classId))
      ) {
        continue;
      }
      if (this.zone !== null && !this.zone.contains(ds.normalize(object.bottomCenter(), frame.width, frame.height))) {
        continue;
      }
      found.push(ds.detect(this.patternFor(object.classId)).fromObject(object).level(this.level).build());
    }
    return found;
  }
}

// One per component instance: the host gives every source its own.
let filter = null;

export const handler = {
  describe() {
    return ds.info("yolo_filter_js", VERSION, "keeps detector objects by class, confidence, size and zone");
  },
  configure(config, context) {
    filter = new Filter(config, context);
  },
  process(frame, objects) {
    if (filter === null) throw "process called before configure";
    return filter.process(frame, objects);
  },
};
