"""yolo_filter in Python: keeps the detector's objects that match class,
confidence, size and (optionally) a polygon zone, and reports one detection
per kept object. The same config, errors and detections as the Rust
`strategies/yolo_filter` (see its README)."""

import dshost_strategy as ds
from wit_world import exports

VERSION = "0.1.0"

FIELDS = {
    "classes": ds.seq(ds.untagged("ClassRef", ds.U32, ds.STRING)),
    "min_confidence": ds.F32,
    "min_width": ds.F32,
    "min_height": ds.F32,
    "zone": ds.optional(ds.seq(ds.array(ds.F32, 2))),
    "pattern": ds.optional(ds.STRING),
    "level": ds.optional(ds.variant("low", "medium", "high", "critical")),
}

LEVELS = {"low": ds.Level.LOW, "medium": ds.Level.MEDIUM, "high": ds.Level.HIGH, "critical": ds.Level.CRITICAL}


class Filter:
    def __init__(self, config, context):
        values = ds.parse_config(config, FIELDS)
        self.min_confidence = values.get("min_confidence", ds.f32(0.5))
        self.min_width = values.get("min_width", 0.0)
        self.min_height = values.get("min_height", 0.0)
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ds.Err(f"`min_confidence` must be within 0..=1, got {ds.fmt_f32(self.min_confidence)}")
        if not (self.min_width >= 0.0 and self.min_height >= 0.0):
            raise ds.Err("`min_width` and `min_height` must be zero or positive")
        classes = values.get("classes") or []
        # None keeps every class; otherwise the set of kept class ids.
        self.keep = None
        if classes:
            self.keep = set()
            for class_ref in classes:
                if isinstance(class_ref, str):
                    try:
                        class_ref = ds.class_id(context, class_ref)
                    except ds.ConfigError as error:
                        raise ds.Err(f"`classes`: {error}") from None
                self.keep.add(class_ref)
        self.zone = None
        if values.get("zone") is not None:
            try:
                self.zone = ds.Polygon(values["zone"])
            except ds.ConfigError as error:
                raise ds.Err(f"`zone`: {error}") from None
        self.pattern = values.get("pattern")
        if self.pattern == "":
            raise ds.Err("`pattern` must not be empty")
        self.level = LEVELS[values.get("level") or "medium"]
        self.labels = list(context.class_labels)

    def pattern_for(self, class_id):
        if self.pattern is not None:
            return self.pattern
        if class_id < len(self.labels) and self.labels[class_id]:
            return self.labels[class_id]
        return f"class_{class_id}"

    def process(self, frame, objects):
        found = []
        min_confidence, min_width, min_height = self.min_confidence, self.min_width, self.min_height
        keep, zone = self.keep, self.zone
        for obj in ds.objects(objects):
            if (
                obj.confidence < min_confidence
                or obj.width < min_width
                or obj.height < min_height
                or (keep is not None and obj.class_id not in keep)
            ):
                continue
            if zone is not None and not zone.contains(ds.normalize(obj.bottom_center(), frame.width, frame.height)):
                continue
            found.append(ds.detect(self.pattern_for(obj.class_id)).from_object(obj).level(self.level).build())
        return found


# One instance per component instance: the host gives every source its own.
_filter = None


class Handler(exports.Handler):
    def describe(self):
        return ds.info("yolo_filter_py", VERSION, "keeps detector objects by class, confidence, size and zone")

    def configure(self, config, context):
        global _filter
        _filter = Filter(config, context)

    def process(self, frame, objects):
        if _filter is None:
            raise ds.Err("process called before configure")
        return _filter.process(frame, objects)
