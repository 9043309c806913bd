/* A dshost strategy in C: reports every object wider than `min_width` pixels.
 * Build with `make`, then try it with `dshost strategy test`. */
#include <stdlib.h>

#include "dshost_strategy.h"

static const char *const FIELDS[] = {"min_width"};
static float min_width = 100.0f;

void exports_dshost_strategy_handler_describe(dshost_strategy_types_strategy_info_t *ret) {
  strategy_string_dup(&ret->name, "wide_objects");
  strategy_string_dup(&ret->version, "0.1.0");
  strategy_string_dup(&ret->description, "objects wider than min_width pixels");
  ret->classes.ptr = NULL;
  ret->classes.len = 0;
  ret->needs_tracking = false;
}

bool exports_dshost_strategy_handler_configure(strategy_string_t *config,
                                               dshost_strategy_types_host_context_t *context,
                                               strategy_string_t *err) {
  char *message = NULL;
  dshost_json_t *doc = dshost_json_parse((const char *)config->ptr, config->len, &message);
  strategy_string_free(config);
  dshost_strategy_types_host_context_free(context);
  if (!doc) return dshost_fail(err, dshost_format("invalid config: %s", message));
  bool ok = doc->kind == DSHOST_JSON_OBJECT;
  if (!ok) message = dshost_json_invalid_type(doc, "struct Config");
  for (size_t i = 0; ok && i < doc->len; i++) {
    ok = dshost_config_field(doc->keys[i], FIELDS, 1, &message) == 0 &&
         dshost_json_f32(&doc->items[i], &min_width, &message);
  }
  dshost_json_free(doc);
  if (!ok) return dshost_fail(err, dshost_format("invalid config: %s", message));
  if (!(min_width >= 0.0f)) return dshost_fail(err, dshost_format("`min_width` must be zero or positive"));
  return true;
}

bool exports_dshost_strategy_handler_process(dshost_strategy_types_frame_header_t *frame, strategy_list_u8_t *objects,
                                             exports_dshost_strategy_handler_list_detection_t *ret,
                                             strategy_string_t *err) {
  char *message = NULL;
  dshost_objects_t view;
  ret->ptr = NULL;
  ret->len = 0;
  bool ok = dshost_objects_init(&view, objects, &message);
  for (size_t i = 0; ok && i < dshost_objects_len(&view); i++) {
    dshost_object_t o = dshost_objects_get(&view, i);
    if (!(o.width > min_width)) continue;
    dshost_detection_t *d = dshost_detect(ret, "wide");
    if (!d) {
      message = dshost_format("out of memory");
      ok = false;
      break;
    }
    dshost_detection_from_object(d, &o);
    char *width = dshost_fmt_f32(o.width);
    dshost_detection_attribute(d, "width", width);
    free(width);
  }
  strategy_list_u8_free(objects);
  dshost_strategy_types_frame_header_free(frame);
  if (!ok) {
    exports_dshost_strategy_handler_list_detection_free(ret);
    return dshost_fail(err, message);
  }
  return true;
}
