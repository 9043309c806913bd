/*
 * yolo_filter in C: keeps the detector's objects that match class,
 * confidence, size and (optionally) a polygon zone, and reports one detection
 * per kept object. The same config, errors and detections as the Rust
 * strategies/yolo_filter (see its README).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dshost_strategy.h"

#define VERSION "0.1.0"

static const char *const FIELDS[] = {"classes", "min_confidence", "min_width", "min_height", "zone", "pattern", "level"};
enum { F_CLASSES, F_MIN_CONFIDENCE, F_MIN_WIDTH, F_MIN_HEIGHT, F_ZONE, F_PATTERN, F_LEVEL, F_COUNT };
static const char *const LEVELS[] = {"low", "medium", "high", "critical"};

typedef struct {
  /* NULL keeps every class; otherwise keep[class_id] for class_id < keep_len. */
  bool *keep;
  size_t keep_len;
  float min_confidence, min_width, min_height;
  bool has_zone;
  dshost_polygon_t zone;
  char *pattern; /* NULL: the object's label */
  dshost_strategy_types_level_t level;
  char **labels;
  size_t label_count;
} filter_t;

/* One per component instance: the host gives every source its own. */
static filter_t *current;

static void filter_free(filter_t *f) {
  if (!f) return;
  free(f->keep);
  free(f->zone.xy);
  free(f->pattern);
  for (size_t i = 0; i < f->label_count; i++) free(f->labels[i]);
  free(f->labels);
  free(f);
}

static bool keep_class(filter_t *f, uint32_t id) {
  if (id >= f->keep_len) {
    bool *grown = realloc(f->keep, ((size_t)id + 1) * sizeof *grown);
    if (!grown) return false;
    memset(grown + f->keep_len, 0, ((size_t)id + 1 - f->keep_len) * sizeof *grown);
    f->keep = grown;
    f->keep_len = (size_t)id + 1;
  }
  f->keep[id] = true;
  return true;
}

/* Builds the filter; on failure returns NULL with *err set. */
static filter_t *configure(const char *text, size_t len, const dshost_strategy_types_host_context_t *ctx, char **err) {
  filter_t *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->min_confidence = 0.5f;
  f->level = DSHOST_STRATEGY_TYPES_LEVEL_MEDIUM;
  const dshost_json_t *classes = NULL, *zone = NULL;
  const char *pattern = NULL;
  char *inner = NULL;

  dshost_json_t *doc = dshost_json_parse(text, len, &inner);
  if (!doc) goto invalid;
  if (doc->kind != DSHOST_JSON_OBJECT) {
    inner = dshost_json_invalid_type(doc, "struct Config");
    goto invalid;
  }
  /* Keys in document order, the first problem wins (as serde reports it). */
  for (size_t i = 0; i < doc->len; i++) {
    const dshost_json_t *v = &doc->items[i];
    int field = dshost_config_field(doc->keys[i], FIELDS, F_COUNT, &inner);
    bool ok = true;
    switch (field) {
      case F_CLASSES:
        ok = dshost_json_seq(v, &inner);
        for (size_t c = 0; ok && c < v->len; c++) {
          const dshost_json_t *ref = &v->items[c];
          uint32_t id;
          char *ignored = NULL;
          bool is_id = dshost_json_u32(ref, &id, &ignored);
          free(ignored);
          if (!is_id && ref->kind != DSHOST_JSON_STRING) {
            inner = dshost_format("data did not match any variant of untagged enum ClassRef");
            ok = false;
          }
        }
        classes = v;
        break;
      case F_MIN_CONFIDENCE: ok = dshost_json_f32(v, &f->min_confidence, &inner); break;
      case F_MIN_WIDTH: ok = dshost_json_f32(v, &f->min_width, &inner); break;
      case F_MIN_HEIGHT: ok = dshost_json_f32(v, &f->min_height, &inner); break;
      case F_ZONE:
        zone = NULL;
        if (v->kind == DSHOST_JSON_NULL) break;
        ok = dshost_json_seq(v, &inner);
        for (size_t p = 0; ok && p < v->len; p++) {
          const dshost_json_t *point = &v->items[p];
          if (point->kind != DSHOST_JSON_ARRAY) {
            inner = dshost_json_invalid_type(point, "an array of length 2");
            ok = false;
          } else if (point->len < 2) {
            inner = dshost_format("invalid length %zu, expected an array of length 2", point->len);
            ok = false;
          } else {
            float ignored;
            ok = dshost_json_f32(&point->items[0], &ignored, &inner) &&
                 dshost_json_f32(&point->items[1], &ignored, &inner);
            if (ok && point->len > 2) {
              inner = dshost_format("trailing characters");
              ok = false;
            }
          }
        }
        zone = v;
        break;
      case F_PATTERN:
        pattern = NULL;
        if (v->kind != DSHOST_JSON_NULL) ok = dshost_json_string(v, &pattern, &inner);
        break;
      case F_LEVEL:
        if (v->kind != DSHOST_JSON_NULL) {
          size_t level;
          ok = dshost_json_variant(v, LEVELS, 4, &level, &inner);
          if (ok) f->level = (dshost_strategy_types_level_t)level;
        } else {
          f->level = DSHOST_STRATEGY_TYPES_LEVEL_MEDIUM;
        }
        break;
      default: ok = false; break; /* unknown field: *inner is set */
    }
    if (!ok) goto invalid;
  }

  if (!(f->min_confidence >= 0.0f && f->min_confidence <= 1.0f)) {
    char *value = dshost_fmt_f32(f->min_confidence);
    *err = dshost_format("`min_confidence` must be within 0..=1, got %s", value ? value : "?");
    free(value);
    goto fail;
  }
  if (!(f->min_width >= 0.0f && f->min_height >= 0.0f)) {
    *err = dshost_format("`min_width` and `min_height` must be zero or positive");
    goto fail;
  }
  if (classes && classes->len > 0) {
    f->keep = calloc(ctx->class_labels.len + 1, sizeof *f->keep);
    f->keep_len = ctx->class_labels.len;
    for (size_t c = 0; c < classes->len; c++) {
      const dshost_json_t *ref = &classes->items[c];
      uint32_t id;
      char *ignored = NULL;
      if (!dshost_json_u32(ref, &id, &ignored)) {
        free(ignored);
        int64_t found = dshost_class_id(ctx, ref->string, &inner);
        if (found < 0) {
          *err = dshost_format("`classes`: %s", inner ? inner : "out of memory");
          goto fail;
        }
        id = (uint32_t)found;
      }
      if (!keep_class(f, id)) goto fail;
    }
  }
  if (zone) {
    f->zone.count = zone->len;
    f->zone.xy = malloc((zone->len ? zone->len : 1) * 2 * sizeof(float));
    if (!f->zone.xy) goto fail;
    for (size_t p = 0; p < zone->len; p++) {
      f->zone.xy[2 * p] = (float)zone->items[p].items[0].number;
      f->zone.xy[2 * p + 1] = (float)zone->items[p].items[1].number;
    }
    if (!dshost_polygon_check(&f->zone, &inner)) {
      *err = dshost_format("`zone`: %s", inner ? inner : "out of memory");
      goto fail;
    }
    f->has_zone = true;
  }
  if (pattern) {
    if (pattern[0] == '\0') {
      *err = dshost_format("`pattern` must not be empty");
      goto fail;
    }
    f->pattern = dshost_format("%s", pattern);
  }
  f->label_count = ctx->class_labels.len;
  f->labels = calloc(f->label_count + 1, sizeof *f->labels);
  if (!f->labels) goto fail;
  for (size_t i = 0; i < f->label_count; i++) f->labels[i] = dshost_cstr(&ctx->class_labels.ptr[i]);
  free(inner);
  dshost_json_free(doc);
  return f;

invalid:
  *err = dshost_format("invalid config: %s", inner ? inner : "out of memory");
fail:
  free(inner);
  dshost_json_free(doc);
  filter_free(f);
  return NULL;
}

void exports_dshost_strategy_handler_describe(dshost_strategy_types_strategy_info_t *ret) {
  memset(ret, 0, sizeof *ret);
  strategy_string_dup(&ret->name, "yolo_filter_c");
  strategy_string_dup(&ret->version, VERSION);
  strategy_string_dup(&ret->description, "keeps detector objects by class, confidence, size and zone");
  ret->needs_tracking = false;
}

bool exports_dshost_strategy_handler_configure(strategy_string_t *config,
                                               dshost_strategy_types_host_context_t *context,
                                               strategy_string_t *err) {
  char *message = NULL;
  filter_t *f = configure((const char *)config->ptr, config->len, context, &message);
  strategy_string_free(config);
  dshost_strategy_types_host_context_free(context);
  if (!f) return dshost_fail(err, message);
  filter_free(current);
  current = f;
  return true;
}

bool exports_dshost_strategy_handler_process(dshost_strategy_types_frame_header_t *frame, strategy_list_u8_t *objects,
                                             exports_dshost_strategy_handler_list_detection_t *ret,
                                             strategy_string_t *err) {
  char *message = NULL;
  dshost_objects_t view;
  bool ok = true;
  ret->ptr = NULL;
  ret->len = 0;
  if (!current) {
    message = dshost_format("process called before configure");
    ok = false;
  } else if (!dshost_objects_init(&view, objects, &message)) {
    ok = false;
  }
  filter_t *f = current;
  size_t count = ok ? dshost_objects_len(&view) : 0;
  for (size_t i = 0; i < count; i++) {
    dshost_object_t o = dshost_objects_get(&view, i);
    if (o.confidence < f->min_confidence || o.width < f->min_width || o.height < f->min_height) continue;
    if (f->keep && (o.class_id >= f->keep_len || !f->keep[o.class_id])) continue;
    if (f->has_zone) {
      float x, y;
      dshost_object_bottom_center(&o, &x, &y);
      dshost_normalize(&x, &y, frame->width, frame->height);
      if (!dshost_polygon_contains(&f->zone, x, y)) continue;
    }
    dshost_detection_t *d;
    if (f->pattern) {
      d = dshost_detect(ret, f->pattern);
    } else if (o.class_id < f->label_count && f->labels[o.class_id] && f->labels[o.class_id][0]) {
      d = dshost_detect(ret, f->labels[o.class_id]);
    } else {
      char name[32];
      snprintf(name, sizeof name, "class_%u", (unsigned)o.class_id);
      d = dshost_detect(ret, name);
    }
    if (!d) {
      message = dshost_format("out of memory");
      ok = false;
      break;
    }
    dshost_detection_from_object(d, &o);
    d->level = f->level;
  }
  strategy_list_u8_free(objects);
  dshost_strategy_types_frame_header_free(frame);
  if (!ok) {
    exports_dshost_strategy_handler_list_detection_free(ret);
    return dshost_fail(err, message);
  }
  return true;
}
