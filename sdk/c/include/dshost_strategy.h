/*
 * dshost strategy helpers for C (wasm32-wasi, clang-16 + wasi-libc).
 *
 * On top of the generated bindings (bindings/strategy.h) this gives:
 *  - a typed view over the compact objects buffer (dshost_objects_*),
 *  - a detection builder that appends to the list `process` returns,
 *  - a small JSON reader and config helpers whose error messages are worded
 *    like the Rust SDK's (serde), without serde's "at line L column C",
 *  - single-precision helpers (polygon, normalize, Rust-style f32 printing),
 *    so a strategy ported from Rust gives the same answers bit for bit.
 *
 * Strings the helpers return as `char *` are malloc'd and NUL-terminated;
 * dshost_fail() hands one over as the `err` of configure/process.
 */
#ifndef DSHOST_STRATEGY_H
#define DSHOST_STRATEGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strategy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- compact objects buffer ------------------------------------------- */

/** Size of one object record in bytes. */
#define DSHOST_RECORD_SIZE 32
/** Object id of an object that no tracker has given an id. */
#define DSHOST_UNTRACKED UINT64_MAX

/** One decoded object record (pixels). */
typedef struct {
  float left, top, width, height;
  float confidence;
  uint32_t class_id;
  /** Raw id; DSHOST_UNTRACKED means none. */
  uint64_t object_id;
} dshost_object_t;

/** A view over the frame's objects buffer (borrowed, not copied). */
typedef struct {
  const uint8_t *bytes;
  size_t len;
} dshost_objects_t;

/**
 * Wraps the buffer `process` received. Returns false (and sets *err to the
 * same message the Rust SDK gives) when it does not hold whole records.
 */
bool dshost_objects_init(dshost_objects_t *view, const strategy_list_u8_t *buffer, char **err);

/** Number of objects in the view. */
static inline size_t dshost_objects_len(const dshost_objects_t *view) { return view->len / DSHOST_RECORD_SIZE; }

/** Decodes object `index` (< dshost_objects_len). */
dshost_object_t dshost_objects_get(const dshost_objects_t *view, size_t index);

/** Bottom-centre point of an object (where a person touches the ground). */
static inline void dshost_object_bottom_center(const dshost_object_t *o, float *x, float *y) {
  *x = o->left + o->width / 2.0f;
  *y = o->top + o->height;
}

/* ---- detections ---------------------------------------------------------- */

#ifdef DSHOST_STRATEGY_PACKED
/*
 * Contract dshost:strategy@0.2.0 (bindings/): `process` returns packed
 * detections. Strategies still implement `process` with a list of
 * detections, as for 0.1.0 (bindings/0.1.0/); the SDK packs it
 * (dshost_packed_process), so the same source builds against either.
 */
typedef struct {
  dshost_strategy_types_detection_t *ptr;
  size_t len;
} exports_dshost_strategy_handler_list_detection_t;

/** Frees a list of detections and everything in it. */
void exports_dshost_strategy_handler_list_detection_free(exports_dshost_strategy_handler_list_detection_t *ptr);

/** What the strategy implements; see bindings/0.1.0/strategy.h for 0.1.0. */
bool exports_dshost_strategy_handler_process(dshost_strategy_types_frame_header_t *frame, strategy_list_u8_t *objects,
                                             exports_dshost_strategy_handler_list_detection_t *ret,
                                             strategy_string_t *err);
#endif

typedef dshost_strategy_types_detection_t dshost_detection_t;
typedef exports_dshost_strategy_handler_list_detection_t dshost_detections_t;

/**
 * Appends a detection named `pattern` (copied) with confidence 1, an empty
 * box, no object id, level medium and no attributes; returns it for the
 * caller to fill (see dshost_detection_from_object). NULL when out of memory.
 */
dshost_detection_t *dshost_detect(dshost_detections_t *list, const char *pattern);

/** Copies box, confidence and object id from an object. */
void dshost_detection_from_object(dshost_detection_t *d, const dshost_object_t *o);

/** Adds a key/value attribute (both copied). */
bool dshost_detection_attribute(dshost_detection_t *d, const char *key, const char *value);

/* ---- strings and errors -------------------------------------------------- */

/** printf into a fresh malloc'd string (never NULL unless out of memory). */
char *dshost_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Moves a malloc'd C string into a WIT string (taking ownership) and returns false. */
bool dshost_fail(strategy_string_t *out, char *message);

/** A NUL-terminated copy of a WIT string. */
char *dshost_cstr(const strategy_string_t *s);

/** Rust's `{}` for an f32: shortest round-tripping digits, plain decimal. */
char *dshost_fmt_f32(float value);

/* ---- host context -------------------------------------------------------- */

/** The class id of `label`; -1 and *err naming the label and the known ones. */
int64_t dshost_class_id(const dshost_strategy_types_host_context_t *ctx, const char *label, char **err);

/* ---- geometry (f32, like the Rust SDK) ----------------------------------- */

typedef struct {
  float *xy; /* x0, y0, x1, y1, ... */
  size_t count;
} dshost_polygon_t;

/** Pixel point to normalized 0..1 frame coordinates. */
static inline void dshost_normalize(float *x, float *y, uint32_t frame_width, uint32_t frame_height) {
  float w = (float)(frame_width > 1 ? frame_width : 1);
  float h = (float)(frame_height > 1 ? frame_height : 1);
  *x = *x / w;
  *y = *y / h;
}

/** Checks a polygon like the Rust SDK's Polygon::new; *err on failure. */
bool dshost_polygon_check(const dshost_polygon_t *p, char **err);

/** Even-odd point-in-polygon test. */
bool dshost_polygon_contains(const dshost_polygon_t *p, float x, float y);

/* ---- JSON config --------------------------------------------------------- */

typedef enum { DSHOST_JSON_NULL, DSHOST_JSON_BOOL, DSHOST_JSON_NUMBER, DSHOST_JSON_STRING, DSHOST_JSON_ARRAY, DSHOST_JSON_OBJECT } dshost_json_kind_t;

typedef struct dshost_json {
  dshost_json_kind_t kind;
  bool boolean;
  /** Numbers: the value, and whether the text was an integer (no '.', 'e'). */
  double number;
  bool integer;
  char *number_text;
  /** Strings (NUL-terminated, UTF-8). */
  char *string;
  /** Arrays and objects: `len` items; objects also have `keys`, in document order. */
  size_t len;
  struct dshost_json *items;
  char **keys;
} dshost_json_t;

/** Parses JSON text (empty or blank text is `{}`); *err on syntax errors. */
dshost_json_t *dshost_json_parse(const char *text, size_t len, char **err);
void dshost_json_free(dshost_json_t *value);

/**
 * Index of `key` in `fields` (the config's keys in declaration order), or -1
 * with *err = serde's "unknown field `k`, expected one of `a`, `b`, ...".
 */
int dshost_config_field(const char *key, const char *const *fields, size_t field_count, char **err);

/** serde's "invalid type: <what>, expected <expected>". */
char *dshost_json_invalid_type(const dshost_json_t *value, const char *expected);

/** A number as f32 (integers accepted); *err otherwise. */
bool dshost_json_f32(const dshost_json_t *value, float *out, char **err);

/** A whole number within 0..=4294967295; *err otherwise. */
bool dshost_json_u32(const dshost_json_t *value, uint32_t *out, char **err);

/** A string (borrowed from the JSON value); *err otherwise. */
bool dshost_json_string(const dshost_json_t *value, const char **out, char **err);

/** Checks that `value` is an array; *err "... expected a sequence" otherwise. */
bool dshost_json_seq(const dshost_json_t *value, char **err);

/** One of `names` (a Rust enum of unit variants): its index; *err otherwise. */
bool dshost_json_variant(const dshost_json_t *value, const char *const *names, size_t count, size_t *out, char **err);

#ifdef __cplusplus
}
#endif

#endif
