// A dshost strategy in JavaScript: reports every object wider than
// `min_width` pixels. Build with ./build.sh, then try it with `dshost strategy test`.
import * as ds from "./dshost_strategy.js";

const FIELDS = { min_width: ds.F32, pattern: ds.optional(ds.STRING) };

// The host creates one component instance per source, so module state is per source.
let config = null;

export const handler = {
  describe() {
    return ds.info("wide_objects", "0.1.0", "objects wider than min_width pixels");
  },
  configure(text, context) {
    const values = ds.parseConfig(text, FIELDS);
    const minWidth = values.min_width ?? 100;
    if (!(minWidth >= 0)) throw "`min_width` must be zero or positive";
    config = { minWidth, pattern: values.pattern || "wide" };
  },
  process(frame, objects) {
    if (config === null) throw "process called before configure";
    return ds
      .objects(objects)
      .filter((o) => o.width > config.minWidth)
      .map((o) => ds.detect(config.pattern).fromObject(o).attribute("width", ds.fmtF32(o.width)).build());
  },
};
