/* dshost strategy helpers for C; see include/dshost_strategy.h. */
#include "dshost_strategy.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- strings and errors -------------------------------------------------- */

char *dshost_format(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  int needed = vsnprintf(NULL, 0, fmt, args);
  va_end(args);
  if (needed < 0) return NULL;
  char *out = malloc((size_t)needed + 1);
  if (!out) return NULL;
  va_start(args, fmt);
  vsnprintf(out, (size_t)needed + 1, fmt, args);
  va_end(args);
  return out;
}

bool dshost_fail(strategy_string_t *out, char *message) {
  if (!message) message = dshost_format("out of memory");
  out->ptr = (uint8_t *)message;
  out->len = message ? strlen(message) : 0;
  return false;
}

char *dshost_cstr(const strategy_string_t *s) {
  char *out = malloc(s->len + 1);
  if (!out) return NULL;
  memcpy(out, s->ptr, s->len);
  out[s->len] = '\0';
  return out;
}

/* Turns "d.ddde+XX" / "ddd.dd" into plain decimal without exponent. */
static char *plain_decimal(const char *text) {
  char digits[64];
  size_t nd = 0;
  int point = -1, exp = 0;
  bool negative = false;
  const char *p = text;
  if (*p == '-') {
    negative = true;
    p++;
  }
  for (; *p && *p != 'e' && *p != 'E'; p++) {
    if (*p == '.') point = (int)nd;
    else if (nd < sizeof digits) digits[nd++] = *p;
  }
  if (*p == 'e' || *p == 'E') exp = atoi(p + 1);
  if (point < 0) point = (int)nd;
  point += exp;
  char out[128];
  size_t n = 0;
  if (negative) out[n++] = '-';
  if (point <= 0) {
    out[n++] = '0';
    out[n++] = '.';
    for (int i = 0; i < -point && n < 100; i++) out[n++] = '0';
    for (size_t i = 0; i < nd && n < 126; i++) out[n++] = digits[i];
  } else {
    for (int i = 0; i < point && n < 126; i++) out[n++] = (size_t)i < nd ? digits[i] : '0';
    if ((size_t)point < nd) {
      out[n++] = '.';
      for (size_t i = (size_t)point; i < nd && n < 126; i++) out[n++] = digits[i];
    }
  }
  out[n] = '\0';
  if (strchr(out, '.')) {
    while (n > 0 && out[n - 1] == '0') out[--n] = '\0';
    if (n > 0 && out[n - 1] == '.') out[--n] = '\0';
  }
  /* Strip leading zeros of the integer part ("007" cannot happen, "0.5" stays). */
  return dshost_format("%s", out);
}

char *dshost_fmt_f32(float value) {
  if (isnan(value)) return dshost_format("NaN");
  if (isinf(value)) return dshost_format(value > 0 ? "inf" : "-inf");
  char text[64];
  for (int digits = 1; digits <= 9; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, (double)value);
    if ((float)strtod(text, NULL) == value) break;
  }
  return plain_decimal(text);
}

/* ---- objects --------------------------------------------------------------- */

bool dshost_objects_init(dshost_objects_t *view, const strategy_list_u8_t *buffer, char **err) {
  if (buffer->len % DSHOST_RECORD_SIZE != 0) {
    *err = dshost_format("objects buffer of %zu bytes is not a multiple of the %d-byte record size", buffer->len,
                         DSHOST_RECORD_SIZE);
    return false;
  }
  view->bytes = buffer->ptr;
  view->len = buffer->len;
  return true;
}

dshost_object_t dshost_objects_get(const dshost_objects_t *view, size_t index) {
  /* wasm32 is little-endian, so the record is read with plain copies. */
  const uint8_t *r = view->bytes + index * DSHOST_RECORD_SIZE;
  dshost_object_t o;
  memcpy(&o.left, r, 4);
  memcpy(&o.top, r + 4, 4);
  memcpy(&o.width, r + 8, 4);
  memcpy(&o.height, r + 12, 4);
  memcpy(&o.confidence, r + 16, 4);
  memcpy(&o.class_id, r + 20, 4);
  memcpy(&o.object_id, r + 24, 8);
  return o;
}

/* ---- detections -------------------------------------------------------------- */

static bool string_dup(strategy_string_t *out, const char *text) {
  size_t len = strlen(text);
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return false;
  memcpy(copy, text, len);
  out->ptr = copy;
  out->len = len;
  return true;
}

dshost_detection_t *dshost_detect(dshost_detections_t *list, const char *pattern) {
  /* Grow by doubling; the list is handed to the host, which frees it through
   * the generated post-return function. */
  size_t len = list->len;
  if (len == 0 || (len >= 4 && (len & (len - 1)) == 0)) {
    dshost_detection_t *grown = realloc(list->ptr, (len ? 2 * len : 4) * sizeof *grown);
    if (!grown) return NULL;
    list->ptr = grown;
  }
  dshost_detection_t *d = &list->ptr[list->len];
  memset(d, 0, sizeof *d);
  if (!string_dup(&d->pattern, pattern)) return NULL;
  d->confidence = 1.0f;
  d->level = DSHOST_STRATEGY_TYPES_LEVEL_MEDIUM;
  list->len++;
  return d;
}

void dshost_detection_from_object(dshost_detection_t *d, const dshost_object_t *o) {
  d->bbox.left = o->left;
  d->bbox.top = o->top;
  d->bbox.width = o->width;
  d->bbox.height = o->height;
  d->confidence = o->confidence;
  d->object_id.is_some = o->object_id != DSHOST_UNTRACKED;
  d->object_id.val = d->object_id.is_some ? o->object_id : 0;
}

bool dshost_detection_attribute(dshost_detection_t *d, const char *key, const char *value) {
  size_t n = d->attributes.len;
  void *grown = realloc(d->attributes.ptr, (n + 1) * sizeof *d->attributes.ptr);
  if (!grown) return false;
  d->attributes.ptr = grown;
  if (!string_dup(&d->attributes.ptr[n].f0, key)) return false;
  if (!string_dup(&d->attributes.ptr[n].f1, value)) return false;
  d->attributes.len = n + 1;
  return true;
}

/* ---- host context ------------------------------------------------------------ */

int64_t dshost_class_id(const dshost_strategy_types_host_context_t *ctx, const char *label, char **err) {
  size_t label_len = strlen(label);
  size_t known_len = 0;
  for (size_t i = 0; i < ctx->class_labels.len; i++) {
    const strategy_string_t *known = &ctx->class_labels.ptr[i];
    if (known->len == label_len && memcmp(known->ptr, label, label_len) == 0) return (int64_t)i;
    known_len += known->len + 2;
  }
  char *known = malloc(known_len + 1);
  if (!known) {
    *err = NULL;
    return -1;
  }
  size_t at = 0;
  for (size_t i = 0; i < ctx->class_labels.len; i++) {
    if (i > 0) {
      known[at++] = ',';
      known[at++] = ' ';
    }
    memcpy(known + at, ctx->class_labels.ptr[i].ptr, ctx->class_labels.ptr[i].len);
    at += ctx->class_labels.ptr[i].len;
  }
  known[at] = '\0';
  *err = dshost_format("unknown label `%s`; the host knows: %s", label, known);
  free(known);
  return -1;
}

/* ---- geometry ------------------------------------------------------------------ */

bool dshost_polygon_check(const dshost_polygon_t *p, char **err) {
  if (p->count < 3) {
    *err = dshost_format("a polygon needs at least 3 points, got %zu", p->count);
    return false;
  }
  for (size_t i = 0; i < 2 * p->count; i++) {
    if (!isfinite(p->xy[i])) {
      *err = dshost_format("polygon coordinates must be finite numbers");
      return false;
    }
  }
  return true;
}

bool dshost_polygon_contains(const dshost_polygon_t *p, float px, float py) {
  bool inside = false;
  size_t n = p->count;
  size_t j = n - 1;
  for (size_t i = 0; i < n; i++) {
    float xi = p->xy[2 * i], yi = p->xy[2 * i + 1];
    float xj = p->xy[2 * j], yj = p->xy[2 * j + 1];
    if ((yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi) inside = !inside;
    j = i;
  }
  return inside;
}

/* ---- JSON -------------------------------------------------------------------------- */

typedef struct {
  const char *at;
  const char *end;
  char *err;
} parser_t;

static void skip_ws(parser_t *p) {
  while (p->at < p->end && (*p->at == ' ' || *p->at == '\t' || *p->at == '\n' || *p->at == '\r')) p->at++;
}

static bool parse_value(parser_t *p, dshost_json_t *out, int depth);

static bool fail(parser_t *p, const char *what) {
  if (!p->err) p->err = dshost_format("%s", what);
  return false;
}

static void put_utf8(char *buf, size_t *n, uint32_t c) {
  if (c < 0x80) {
    buf[(*n)++] = (char)c;
  } else if (c < 0x800) {
    buf[(*n)++] = (char)(0xC0 | (c >> 6));
    buf[(*n)++] = (char)(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    buf[(*n)++] = (char)(0xE0 | (c >> 12));
    buf[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
    buf[(*n)++] = (char)(0x80 | (c & 0x3F));
  } else {
    buf[(*n)++] = (char)(0xF0 | (c >> 18));
    buf[(*n)++] = (char)(0x80 | ((c >> 12) & 0x3F));
    buf[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
    buf[(*n)++] = (char)(0x80 | (c & 0x3F));
  }
}

static bool hex4(parser_t *p, uint32_t *out) {
  if (p->end - p->at < 4) return fail(p, "EOF while parsing a string");
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = *p->at++;
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return fail(p, "invalid escape");
  }
  *out = v;
  return true;
}

static bool parse_string(parser_t *p, char **out) {
  p->at++; /* opening quote */
  /* Escapes never make the text longer, so the raw length bounds the result. */
  const char *start = p->at;
  while (p->at < p->end && *p->at != '"') p->at += (*p->at == '\\' && p->at + 1 < p->end) ? 2 : 1;
  if (p->at >= p->end) return fail(p, "EOF while parsing a string");
  size_t raw = (size_t)(p->at - start);
  char *buf = malloc(raw + 1);
  if (!buf) return fail(p, "out of memory");
  size_t n = 0;
  p->at = start;
  while (*p->at != '"') {
    char c = *p->at++;
    if (c != '\\') {
      buf[n++] = c;
      continue;
    }
    char e = *p->at++;
    switch (e) {
      case '"': buf[n++] = '"'; break;
      case '\\': buf[n++] = '\\'; break;
      case '/': buf[n++] = '/'; break;
      case 'b': buf[n++] = '\b'; break;
      case 'f': buf[n++] = '\f'; break;
      case 'n': buf[n++] = '\n'; break;
      case 'r': buf[n++] = '\r'; break;
      case 't': buf[n++] = '\t'; break;
      case 'u': {
        uint32_t c1;
        if (!hex4(p, &c1)) {
          free(buf);
          return false;
        }
        if (c1 >= 0xD800 && c1 < 0xDC00 && p->end - p->at >= 6 && p->at[0] == '\\' && p->at[1] == 'u') {
          p->at += 2;
          uint32_t c2;
          if (!hex4(p, &c2)) {
            free(buf);
            return false;
          }
          c1 = 0x10000 + ((c1 - 0xD800) << 10) + (c2 - 0xDC00);
        }
        put_utf8(buf, &n, c1);
        break;
      }
      default:
        free(buf);
        return fail(p, "invalid escape");
    }
  }
  p->at++; /* closing quote */
  buf[n] = '\0';
  *out = buf;
  return true;
}

static bool literal(parser_t *p, const char *word) {
  size_t len = strlen(word);
  if ((size_t)(p->end - p->at) < len || memcmp(p->at, word, len) != 0) return fail(p, "expected value");
  p->at += len;
  return true;
}

static bool parse_number(parser_t *p, dshost_json_t *out) {
  const char *start = p->at;
  bool integer = true;
  if (p->at < p->end && *p->at == '-') p->at++;
  if (p->at >= p->end || *p->at < '0' || *p->at > '9') return fail(p, "invalid number");
  while (p->at < p->end && ((*p->at >= '0' && *p->at <= '9') || *p->at == '.' || *p->at == 'e' || *p->at == 'E' ||
                            *p->at == '+' || *p->at == '-')) {
    if (*p->at == '.' || *p->at == 'e' || *p->at == 'E') integer = false;
    p->at++;
  }
  size_t len = (size_t)(p->at - start);
  out->number_text = malloc(len + 1);
  if (!out->number_text) return fail(p, "out of memory");
  memcpy(out->number_text, start, len);
  out->number_text[len] = '\0';
  char *end = NULL;
  out->number = strtod(out->number_text, &end);
  if (end != out->number_text + len) return fail(p, "invalid number");
  out->kind = DSHOST_JSON_NUMBER;
  out->integer = integer;
  return true;
}

static bool push_item(parser_t *p, dshost_json_t *container, size_t *capacity) {
  if (container->len == *capacity) {
    size_t grown = *capacity ? *capacity * 2 : 4;
    dshost_json_t *items = realloc(container->items, grown * sizeof *items);
    if (!items) return fail(p, "out of memory");
    container->items = items;
    if (container->kind == DSHOST_JSON_OBJECT) {
      char **keys = realloc(container->keys, grown * sizeof *keys);
      if (!keys) return fail(p, "out of memory");
      container->keys = keys;
    }
    *capacity = grown;
  }
  memset(&container->items[container->len], 0, sizeof container->items[0]);
  if (container->kind == DSHOST_JSON_OBJECT) container->keys[container->len] = NULL;
  container->len++;
  return true;
}

static bool parse_value(parser_t *p, dshost_json_t *out, int depth) {
  if (depth > 128) return fail(p, "recursion limit exceeded");
  skip_ws(p);
  if (p->at >= p->end) return fail(p, "EOF while parsing a value");
  size_t capacity = 0;
  switch (*p->at) {
    case 'n': out->kind = DSHOST_JSON_NULL; return literal(p, "null");
    case 't': out->kind = DSHOST_JSON_BOOL; out->boolean = true; return literal(p, "true");
    case 'f': out->kind = DSHOST_JSON_BOOL; out->boolean = false; return literal(p, "false");
    case '"': out->kind = DSHOST_JSON_STRING; return parse_string(p, &out->string);
    case '[':
      out->kind = DSHOST_JSON_ARRAY;
      p->at++;
      skip_ws(p);
      if (p->at < p->end && *p->at == ']') {
        p->at++;
        return true;
      }
      for (;;) {
        if (!push_item(p, out, &capacity) || !parse_value(p, &out->items[out->len - 1], depth + 1)) return false;
        skip_ws(p);
        if (p->at < p->end && *p->at == ',') {
          p->at++;
          continue;
        }
        if (p->at < p->end && *p->at == ']') {
          p->at++;
          return true;
        }
        return fail(p, "expected `,` or `]`");
      }
    case '{':
      out->kind = DSHOST_JSON_OBJECT;
      p->at++;
      skip_ws(p);
      if (p->at < p->end && *p->at == '}') {
        p->at++;
        return true;
      }
      for (;;) {
        skip_ws(p);
        if (p->at >= p->end || *p->at != '"') return fail(p, "key must be a string");
        if (!push_item(p, out, &capacity)) return false;
        if (!parse_string(p, &out->keys[out->len - 1])) return false;
        skip_ws(p);
        if (p->at >= p->end || *p->at != ':') return fail(p, "expected `:`");
        p->at++;
        if (!parse_value(p, &out->items[out->len - 1], depth + 1)) return false;
        skip_ws(p);
        if (p->at < p->end && *p->at == ',') {
          p->at++;
          continue;
        }
        if (p->at < p->end && *p->at == '}') {
          p->at++;
          return true;
        }
        return fail(p, "expected `,` or `}`");
      }
    default:
      return parse_number(p, out);
  }
}

static void json_clear(dshost_json_t *v) {
  free(v->number_text);
  free(v->string);
  for (size_t i = 0; i < v->len; i++) {
    json_clear(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
}

void dshost_json_free(dshost_json_t *value) {
  if (!value) return;
  json_clear(value);
  free(value);
}

dshost_json_t *dshost_json_parse(const char *text, size_t len, char **err) {
  parser_t p = {text, text + len, NULL};
  skip_ws(&p);
  if (p.at == p.end) {
    p.at = "{}";
    p.end = p.at + 2;
  }
  dshost_json_t *root = calloc(1, sizeof *root);
  if (!root) {
    *err = dshost_format("out of memory");
    return NULL;
  }
  bool ok = parse_value(&p, root, 0);
  if (ok) {
    skip_ws(&p);
    if (p.at != p.end) ok = fail(&p, "trailing characters");
  }
  if (!ok) {
    *err = p.err;
    dshost_json_free(root);
    return NULL;
  }
  return root;
}

/* ---- config helpers (serde's wording) -------------------------------------------- */

static char *debug_string(const char *s) {
  size_t len = strlen(s);
  char *out = malloc(2 * len + 3);
  if (!out) return NULL;
  size_t n = 0;
  out[n++] = '"';
  for (; *s; s++) {
    switch (*s) {
      case '"': out[n++] = '\\'; out[n++] = '"'; break;
      case '\\': out[n++] = '\\'; out[n++] = '\\'; break;
      case '\n': out[n++] = '\\'; out[n++] = 'n'; break;
      case '\r': out[n++] = '\\'; out[n++] = 'r'; break;
      case '\t': out[n++] = '\\'; out[n++] = 't'; break;
      default: out[n++] = *s;
    }
  }
  out[n++] = '"';
  out[n] = '\0';
  return out;
}

/* Shortest round-tripping text of a double, with a ".0" for whole numbers
 * (serde's "floating point `1.0`"). */
static char *float_text(double value) {
  char text[64];
  for (int digits = 1; digits <= 17; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, value);
    if (strtod(text, NULL) == value) break;
  }
  if (!strpbrk(text, ".en")) return dshost_format("%s.0", text);
  return dshost_format("%s", text);
}

char *dshost_json_invalid_type(const dshost_json_t *v, const char *expected) {
  switch (v->kind) {
    case DSHOST_JSON_NULL: return dshost_format("invalid type: null, expected %s", expected);
    case DSHOST_JSON_BOOL:
      return dshost_format("invalid type: boolean `%s`, expected %s", v->boolean ? "true" : "false", expected);
    case DSHOST_JSON_NUMBER: {
      if (v->integer) return dshost_format("invalid type: integer `%s`, expected %s", v->number_text, expected);
      char *text = float_text(v->number);
      char *out = dshost_format("invalid type: floating point `%s`, expected %s", text ? text : "?", expected);
      free(text);
      return out;
    }
    case DSHOST_JSON_STRING: {
      char *quoted = debug_string(v->string);
      char *out = dshost_format("invalid type: string %s, expected %s", quoted ? quoted : "\"\"", expected);
      free(quoted);
      return out;
    }
    case DSHOST_JSON_ARRAY: return dshost_format("invalid type: sequence, expected %s", expected);
    default: return dshost_format("invalid type: map, expected %s", expected);
  }
}

int dshost_config_field(const char *key, const char *const *fields, size_t field_count, char **err) {
  size_t total = 0;
  for (size_t i = 0; i < field_count; i++) {
    if (strcmp(key, fields[i]) == 0) return (int)i;
    total += strlen(fields[i]) + 4;
  }
  if (field_count == 1) {
    *err = dshost_format("unknown field `%s`, expected `%s`", key, fields[0]);
    return -1;
  }
  char *list = malloc(total + 1);
  if (!list) {
    *err = NULL;
    return -1;
  }
  size_t n = 0;
  for (size_t i = 0; i < field_count; i++) {
    n += (size_t)sprintf(list + n, "%s`%s`", i ? ", " : "", fields[i]);
  }
  *err = dshost_format("unknown field `%s`, expected one of %s", key, list);
  free(list);
  return -1;
}

bool dshost_json_f32(const dshost_json_t *v, float *out, char **err) {
  if (v->kind != DSHOST_JSON_NUMBER) {
    *err = dshost_json_invalid_type(v, "f32");
    return false;
  }
  *out = (float)v->number;
  return true;
}

bool dshost_json_u32(const dshost_json_t *v, uint32_t *out, char **err) {
  if (v->kind != DSHOST_JSON_NUMBER || !v->integer) {
    *err = dshost_json_invalid_type(v, "u32");
    return false;
  }
  const char *text = v->number_text;
  bool negative = text[0] == '-';
  char *end = NULL;
  unsigned long long value = strtoull(negative ? text + 1 : text, &end, 10);
  if (negative ? value != 0 : value > 0xFFFFFFFFull) {
    *err = dshost_format("invalid value: integer `%s`, expected u32", text);
    return false;
  }
  *out = (uint32_t)value;
  return true;
}

bool dshost_json_string(const dshost_json_t *v, const char **out, char **err) {
  if (v->kind != DSHOST_JSON_STRING) {
    *err = dshost_json_invalid_type(v, "a string");
    return false;
  }
  *out = v->string;
  return true;
}

bool dshost_json_seq(const dshost_json_t *v, char **err) {
  if (v->kind != DSHOST_JSON_ARRAY) {
    *err = dshost_json_invalid_type(v, "a sequence");
    return false;
  }
  return true;
}

bool dshost_json_variant(const dshost_json_t *v, const char *const *names, size_t count, size_t *out, char **err) {
  if (v->kind != DSHOST_JSON_STRING) {
    *err = dshost_format("expected value");
    return false;
  }
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    if (strcmp(v->string, names[i]) == 0) {
      *out = i;
      return true;
    }
    total += strlen(names[i]) + 4;
  }
  char *list = malloc(total + 1);
  if (!list) {
    *err = NULL;
    return false;
  }
  size_t n = 0;
  for (size_t i = 0; i < count; i++) n += (size_t)sprintf(list + n, "%s`%s`", i ? ", " : "", names[i]);
  *err = dshost_format("unknown variant `%s`, expected one of %s", v->string, list);
  free(list);
  return false;
}

/* ---- packed detections (contract 0.2.0) ---------------------------------- */

#ifdef DSHOST_STRATEGY_PACKED

#define PACKED_RECORD_SIZE 32
#define FLAG_OBJECT_ID 1u

void exports_dshost_strategy_handler_list_detection_free(exports_dshost_strategy_handler_list_detection_t *ptr) {
  for (size_t i = 0; i < ptr->len; i++) dshost_strategy_types_detection_free(&ptr->ptr[i]);
  free(ptr->ptr);
  ptr->ptr = NULL;
  ptr->len = 0;
}

/* Little-endian stores (wasm32 is little-endian; memcpy keeps them aligned-safe). */
static void put_f32(uint8_t *at, float value) { memcpy(at, &value, 4); }
static void put_u16(uint8_t *at, uint16_t value) { memcpy(at, &value, 2); }
static void put_u64(uint8_t *at, uint64_t value) { memcpy(at, &value, 8); }

static bool same_string(const strategy_string_t *a, const strategy_string_t *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

/*
 * The 0.2.0 `process` export (bindings/strategy.c calls it): runs the
 * strategy's own process, then packs its list into one 32-byte record per
 * detection (layout in wit/strategy.wit), each distinct pattern once, and the
 * attributes tagged with their record. Strings move; nothing is copied.
 */
bool dshost_packed_process(dshost_strategy_types_frame_header_t *frame, strategy_list_u8_t *objects,
                           dshost_strategy_types_packed_detections_t *ret, strategy_string_t *err) {
  memset(ret, 0, sizeof *ret);
  exports_dshost_strategy_handler_list_detection_t list = {NULL, 0};
  if (!exports_dshost_strategy_handler_process(frame, objects, &list, err)) return false;
  size_t n = list.len, attribute_count = 0;
  for (size_t i = 0; i < n; i++) attribute_count += list.ptr[i].attributes.len;
  uint8_t *records = n ? malloc(n * PACKED_RECORD_SIZE) : NULL;
  strategy_string_t *patterns = n ? malloc(n * sizeof *patterns) : NULL;
  dshost_strategy_types_attribute_t *attributes =
      attribute_count ? malloc(attribute_count * sizeof *attributes) : NULL;
  if ((n && (!records || !patterns)) || (attribute_count && !attributes)) {
    free(records);
    free(patterns);
    free(attributes);
    exports_dshost_strategy_handler_list_detection_free(&list);
    return dshost_fail(err, NULL);
  }
  size_t pattern_count = 0, last = 0, at = 0;
  for (size_t i = 0; i < n; i++) {
    dshost_detection_t *d = &list.ptr[i];
    size_t index;
    if (pattern_count && same_string(&patterns[last], &d->pattern)) {
      index = last;
    } else {
      for (index = 0; index < pattern_count && !same_string(&patterns[index], &d->pattern); index++) {
      }
    }
    if (index == pattern_count) {
      patterns[pattern_count++] = d->pattern; /* moved */
    } else {
      strategy_string_free(&d->pattern);
    }
    d->pattern.ptr = NULL;
    d->pattern.len = 0;
    last = index;
    if (index > 0xFFFF) {
      /* Past a u16 index: refuse rather than name the wrong pattern. */
      for (size_t k = 0; k < pattern_count; k++) strategy_string_free(&patterns[k]);
      for (size_t k = 0; k < at; k++) {
        strategy_string_free(&attributes[k].key);
        strategy_string_free(&attributes[k].value);
      }
      free(records);
      free(patterns);
      free(attributes);
      exports_dshost_strategy_handler_list_detection_free(&list);
      return dshost_fail(err, dshost_format("more than 65536 distinct patterns in one frame"));
    }
    uint8_t *r = records + i * PACKED_RECORD_SIZE;
    put_f32(r, d->bbox.left);
    put_f32(r + 4, d->bbox.top);
    put_f32(r + 8, d->bbox.width);
    put_f32(r + 12, d->bbox.height);
    put_f32(r + 16, d->confidence);
    put_u16(r + 20, (uint16_t)index);
    r[22] = (uint8_t)d->level;
    r[23] = d->object_id.is_some ? FLAG_OBJECT_ID : 0;
    put_u64(r + 24, d->object_id.is_some ? d->object_id.val : 0);
    for (size_t k = 0; k < d->attributes.len; k++) {
      attributes[at].detection = (uint32_t)i;
      attributes[at].key = d->attributes.ptr[k].f0; /* moved */
      attributes[at].value = d->attributes.ptr[k].f1;
      at++;
    }
    free(d->attributes.ptr);
    d->attributes.ptr = NULL;
    d->attributes.len = 0;
  }
  free(list.ptr);
  ret->records.ptr = records;
  ret->records.len = n * PACKED_RECORD_SIZE;
  ret->patterns.ptr = patterns;
  ret->patterns.len = pattern_count;
  ret->attributes.ptr = attributes;
  ret->attributes.len = attribute_count;
  return true;
}

#endif
