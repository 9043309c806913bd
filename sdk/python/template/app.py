"""A dshost strategy in Python: reports every object wider than `min_width`
pixels. Build with ./build.sh, then try it with `dshost strategy test`."""

import dshost_strategy as ds
from wit_world import exports

FIELDS = {"min_width": ds.F32, "pattern": ds.optional(ds.STRING)}

# The host creates one component instance per source, so module state is per source.
_config = None


class Handler(exports.Handler):
    def describe(self):
        return ds.info("wide_objects", "0.1.0", "objects wider than min_width pixels")

    def configure(self, config, context):
        global _config
        values = ds.parse_config(config, FIELDS)
        min_width = values.get("min_width", ds.f32(100.0))
        if not min_width >= 0.0:
            raise ds.Err("`min_width` must be zero or positive")
        _config = (min_width, values.get("pattern") or "wide")

    def process(self, frame, objects):
        if _config is None:
            raise ds.Err("process called before configure")
        min_width, pattern = _config
        return [
            ds.detect(pattern).from_object(obj).attribute("width", ds.fmt_f32(obj.width)).build()
            for obj in ds.objects(objects)
            if obj.width > min_width
        ]
