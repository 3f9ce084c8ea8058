/* wazoo_guest for C: the SDK's implementation and the component's export (see wazoo_guest.h). It
 * uses only malloc and string functions of libc, so the module imports nothing from WASI. */
#include "wazoo_guest.h"

#include <stdlib.h>
#include <string.h>

wz_error wz_last_error;
static char *fail_msg;

const uint8_t WZ_HOLDS_ONE[8] = {1, 0, 0, 0, 0, 0, 0, 0};

static void *must(void *p) {
    if (!p) __builtin_trap(); /* out of memory: the host ends the call with a clean error */
    return p;
}

static char *dup_n(const void *s, size_t n) {
    char *d = must(malloc(n + 1));
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* ---- aborting ---- */

bool wz_fail(const char *a, const char *b, const char *c) {
    const char *parts[3] = {a, b, c};
    size_t n = 0;
    for (int i = 0; i < 3; i++) n += parts[i] ? strlen(parts[i]) : 0;
    fail_msg = must(malloc(n + 1));
    fail_msg[0] = 0;
    for (int i = 0; i < 3; i++)
        if (parts[i]) strcat(fail_msg, parts[i]);
    return false;
}

const char *wz_error_name(wz_error e) {
    static const char *names[] = {"no-node",  "node-exists",   "bad-version",
                                  "not-empty", "no-children-for-ephemerals",
                                  "bad-arguments", "no-auth", "limit-exceeded", "system-error"};
    return e < sizeof names / sizeof names[0] ? names[e] : "system-error";
}

static bool tree_failed(wz_error e) {
    wz_last_error = e;
    return wz_fail(wz_error_name(e), NULL, NULL);
}

/* ---- MessagePack output ---- */

static void put(wz_out *o, const void *bytes, size_t n) {
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2 + 16;
        o->buf = must(realloc(o->buf, o->cap));
    }
    memcpy(o->buf + o->len, bytes, n);
    o->len += n;
}

static void put_byte(wz_out *o, uint8_t b) { put(o, &b, 1); }

static void put_be(wz_out *o, uint8_t marker, uint64_t v, int bytes) {
    put_byte(o, marker);
    for (int i = bytes - 1; i >= 0; i--) put_byte(o, (uint8_t)(v >> (8 * i)));
}

void wz_put_map(wz_out *o, uint32_t n) {
    if (n < 16) put_byte(o, 0x80 | n);
    else if (n < 65536) put_be(o, 0xde, n, 2);
    else put_be(o, 0xdf, n, 4);
}

void wz_put_str(wz_out *o, const char *s) {
    size_t n = strlen(s);
    if (n < 32) put_byte(o, 0xa0 | (uint8_t)n);
    else if (n < 256) put_be(o, 0xd9, n, 1);
    else if (n < 65536) put_be(o, 0xda, n, 2);
    else put_be(o, 0xdb, n, 4);
    put(o, s, n);
}

void wz_put_uint(wz_out *o, uint64_t v) {
    if (v < 128) put_byte(o, (uint8_t)v);
    else if (v < 256) put_be(o, 0xcc, v, 1);
    else if (v < 65536) put_be(o, 0xcd, v, 2);
    else if (v < 4294967296ull) put_be(o, 0xce, v, 4);
    else put_be(o, 0xcf, v, 8);
}

void wz_put_int(wz_out *o, int64_t v) {
    if (v >= 0) wz_put_uint(o, (uint64_t)v);
    else if (v >= -32) put_byte(o, (uint8_t)v);
    else if (v >= -128) put_be(o, 0xd0, (uint64_t)v, 1);
    else if (v >= -32768) put_be(o, 0xd1, (uint64_t)v, 2);
    else if (v >= -2147483648ll) put_be(o, 0xd2, (uint64_t)v, 4);
    else put_be(o, 0xd3, (uint64_t)v, 8);
}

void wz_put_bool(wz_out *o, bool v) { put_byte(o, v ? 0xc3 : 0xc2); }
void wz_put_nil(wz_out *o) { put_byte(o, 0xc0); }

/* ---- MessagePack input ---- */

typedef struct {
    const uint8_t *p, *end;
} reader;

static bool take_be(reader *r, int bytes, uint64_t *v) {
    if (r->end - r->p < bytes) return false;
    *v = 0;
    for (int i = 0; i < bytes; i++) *v = (*v << 8) | *r->p++;
    return true;
}

/* Reads a header: the kind ('i' int, 'u' uint, 'n' nil, 'b' bool, 'f' float, 's' str, 'B' bin,
 * 'a' array, 'm' map, 'x' ext) and its value or length; false if malformed or truncated. */
static bool header(reader *r, char *kind, uint64_t *v) {
    if (r->p >= r->end) return false;
    uint8_t m = *r->p++;
    if (m < 0x80) { *kind = 'u'; *v = m; return true; }
    if (m >= 0xe0) { *kind = 'i'; *v = (uint64_t)(int64_t)(int8_t)m; return true; }
    if (m <= 0x8f) { *kind = 'm'; *v = m & 0x0f; return true; }
    if (m <= 0x9f) { *kind = 'a'; *v = m & 0x0f; return true; }
    if (m <= 0xbf) { *kind = 's'; *v = m & 0x1f; return true; }
    uint64_t raw;
    switch (m) {
    case 0xc0: *kind = 'n'; *v = 0; return true;
    case 0xc2: case 0xc3: *kind = 'b'; *v = m == 0xc3; return true;
    case 0xc4: case 0xc5: case 0xc6: *kind = 'B'; return take_be(r, 1 << (m - 0xc4), v);
    case 0xca: *kind = 'f'; return take_be(r, 4, v);
    case 0xcb: *kind = 'f'; return take_be(r, 8, v);
    case 0xcc: case 0xcd: case 0xce: case 0xcf: *kind = 'u'; return take_be(r, 1 << (m - 0xcc), v);
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int bytes = 1 << (m - 0xd0);
        if (!take_be(r, bytes, &raw)) return false;
        int shift = 64 - 8 * bytes;
        *kind = 'i';
        *v = (uint64_t)(((int64_t)(raw << shift)) >> shift);
        return true;
    }
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: *kind = 'x'; *v = (1u << (m - 0xd4)) + 1; return true;
    case 0xc7: case 0xc8: case 0xc9:
        *kind = 'x';
        if (!take_be(r, 1 << (m - 0xc7), v)) return false;
        *v += 1; /* the type byte */
        return true;
    case 0xd9: case 0xda: case 0xdb: *kind = 's'; return take_be(r, 1 << (m - 0xd9), v);
    case 0xdc: case 0xdd: *kind = 'a'; return take_be(r, 2 << (m - 0xdc), v);
    case 0xde: case 0xdf: *kind = 'm'; return take_be(r, 2 << (m - 0xde), v);
    default: return false; /* 0xc1 */
    }
}

static bool skip(reader *r, int depth) {
    char kind;
    uint64_t v;
    if (depth > 64 || !header(r, &kind, &v)) return false;
    switch (kind) {
    case 's': case 'B': case 'x':
        if ((uint64_t)(r->end - r->p) < v) return false;
        r->p += v;
        return true;
    case 'a':
        for (uint64_t i = 0; i < v; i++)
            if (!skip(r, depth + 1)) return false;
        return true;
    case 'm':
        for (uint64_t i = 0; i < 2 * v; i++)
            if (!skip(r, depth + 1)) return false;
        return true;
    default:
        return true;
    }
}

/* Finds `key` in the map `m`: 1 with *at on its value, 0 if absent, -1 if `m` is not a map. */
static int find(wz_msg m, const char *key, reader *at) {
    reader r = {m.ptr, m.ptr + m.len};
    char kind;
    uint64_t n;
    if (m.len == 0) return 0;
    if (!header(&r, &kind, &n) || kind != 'm') return -1;
    size_t klen = strlen(key);
    for (uint64_t i = 0; i < n; i++) {
        reader k = r;
        uint64_t len;
        if (!header(&k, &kind, &len)) return -1;
        if (kind == 's' && len == klen && (uint64_t)(k.end - k.p) >= len && memcmp(k.p, key, len) == 0) {
            *at = (reader){k.p + len, r.end};
            return 1;
        }
        if (!skip(&r, 0) || !skip(&r, 0)) return -1;
    }
    return 0;
}

static int bad_arg(const wz_call *call, const char *key) {
    wz_fail(call->op, ": arguments: bad or mistyped ", key);
    return -1;
}

/* The header of argument `key`: 1 (and *r just past it), 0 if absent or nil, -1 (and wz_fail)
 * if the arguments are not a map or do not parse. */
static int arg_header(const wz_call *call, const char *key, reader *r, char *kind, uint64_t *v) {
    int found = find(call->args, key, r);
    if (found < 0) return bad_arg(call, key);
    if (found == 0) return 0;
    if (!header(r, kind, v)) return bad_arg(call, key);
    return *kind == 'n' ? 0 : 1;
}

int wz_arg_str(const wz_call *call, const char *key, char **out) {
    reader r;
    char kind;
    uint64_t len;
    int got = arg_header(call, key, &r, &kind, &len);
    if (got <= 0) return got;
    if (kind != 's' || (uint64_t)(r.end - r.p) < len) return bad_arg(call, key);
    *out = dup_n(r.p, len);
    return 1;
}

int wz_arg_int(const wz_call *call, const char *key, int64_t *out) {
    reader r;
    char kind;
    uint64_t v;
    int got = arg_header(call, key, &r, &kind, &v);
    if (got <= 0) return got;
    if (kind != 'i' && (kind != 'u' || v > INT64_MAX)) return bad_arg(call, key);
    *out = (int64_t)v;
    return 1;
}

int wz_arg_bool(const wz_call *call, const char *key, bool *out) {
    reader r;
    char kind;
    uint64_t v;
    int got = arg_header(call, key, &r, &kind, &v);
    if (got <= 0) return got;
    if (kind != 'b') return bad_arg(call, key);
    *out = v != 0;
    return 1;
}

/* ---- outcomes ---- */

bool wz_done(wz_outcome *out, const wz_out *output) {
    out->tag = EXPORTS_WAZOO_RECIPE_RUNNER_OUTCOME_COMMIT;
    out->val.commit.ptr = output->buf;
    out->val.commit.len = output->len;
    return true;
}

bool wz_park(wz_outcome *out, uint8_t watch_tag, const char *path, bool has_deadline,
             int64_t deadline_ms) {
    exports_wazoo_recipe_runner_park_t *p = &out->val.commit_and_park;
    out->tag = EXPORTS_WAZOO_RECIPE_RUNNER_OUTCOME_COMMIT_AND_PARK;
    p->on.ptr = must(malloc(sizeof *p->on.ptr));
    p->on.len = 1;
    p->on.ptr[0].tag = watch_tag;
    /* Every variant case is a path: the union's members share it. */
    p->on.ptr[0].val.node_deleted.ptr = (uint8_t *)dup_n(path, strlen(path));
    p->on.ptr[0].val.node_deleted.len = strlen(path);
    p->deadline_ms.is_some = has_deadline;
    p->deadline_ms.val = deadline_ms;
    /* The state the SDK keeps across the park: {deadline_ms}. */
    wz_out state = {0};
    wz_put_map(&state, 1);
    wz_put_str(&state, "deadline_ms");
    if (has_deadline) wz_put_int(&state, deadline_ms);
    else wz_put_nil(&state);
    p->state.ptr = state.buf;
    p->state.len = state.len;
    return true;
}

int64_t wz_deadline(const wz_call *call, bool has_timeout, int64_t timeout_ms, bool *has) {
    if (call->parked) {
        *has = call->has_deadline;
        return call->deadline_ms;
    }
    *has = has_timeout && timeout_ms > 0;
    return *has ? wazoo_recipe_context_now_ms() + timeout_ms : 0;
}

/* ---- the tree ---- */

static wazoo_recipe_types_path_t str_of(const char *s) {
    return (wazoo_recipe_types_path_t){(uint8_t *)s, strlen(s)};
}

bool wz_get(const char *path, wz_msg *data, wz_stat *stat) {
    wazoo_recipe_types_path_t p = str_of(path);
    wazoo_recipe_tree_tuple2_list_u8_stat_t ret;
    wz_error err;
    if (!wazoo_recipe_tree_get(&p, &ret, &err)) return tree_failed(err);
    if (data) *data = (wz_msg){ret.f0.ptr, ret.f0.len};
    if (stat) *stat = ret.f1;
    return true;
}

bool wz_exists(const char *path, wz_stat *stat) {
    wazoo_recipe_types_path_t p = str_of(path);
    wz_stat s;
    if (!wazoo_recipe_tree_exists(&p, &s)) return false;
    if (stat) *stat = s;
    return true;
}

bool wz_children(const char *path, char ***names, size_t *n) {
    wazoo_recipe_types_path_t p = str_of(path);
    recipe_list_string_t ret;
    wz_error err;
    if (!wazoo_recipe_tree_children(&p, &ret, &err)) return tree_failed(err);
    /* One spare slot: a recipe may append its own new node. */
    *names = must(malloc((ret.len + 1) * sizeof **names));
    for (size_t i = 0; i < ret.len; i++) (*names)[i] = dup_n(ret.ptr[i].ptr, ret.ptr[i].len);
    *n = ret.len;
    return true;
}

bool wz_children_or_none(const char *path, char ***names, size_t *n) {
    if (wz_children(path, names, n)) return true;
    if (wz_last_error != WAZOO_RECIPE_TYPES_ERROR_CODE_NO_NODE) return false;
    *names = must(malloc(sizeof **names));
    *n = 0;
    return true;
}

bool wz_queue(const char *path, char ***names, size_t *n) {
    if (!wz_children_or_none(path, names, n)) return false;
    wz_sort_by_sequence(*names, *n);
    return true;
}

bool wz_create(const char *path, const uint8_t *data, size_t len, uint8_t mode, char **created) {
    wazoo_recipe_types_path_t p = str_of(path), ret;
    recipe_list_u8_t d = {(uint8_t *)data, len};
    wz_error err;
    if (!wazoo_recipe_tree_create(&p, &d, mode, &ret, &err)) return tree_failed(err);
    if (created) *created = dup_n(ret.ptr, ret.len);
    return true;
}

bool wz_set(const char *path, const uint8_t *data, size_t len, const int32_t *version) {
    wazoo_recipe_types_path_t p = str_of(path);
    recipe_list_u8_t d = {(uint8_t *)data, len};
    int32_t v = version ? *version : 0;
    wz_stat ret;
    wz_error err;
    if (!wazoo_recipe_tree_set(&p, &d, version ? &v : NULL, &ret, &err)) return tree_failed(err);
    return true;
}

bool wz_delete(const char *path, const int32_t *version) {
    wazoo_recipe_types_path_t p = str_of(path);
    int32_t v = version ? *version : 0;
    wz_error err;
    if (!wazoo_recipe_tree_delete(&p, version ? &v : NULL, &err)) return tree_failed(err);
    return true;
}

bool wz_ensure(const char *path, uint8_t mode) {
    if (wz_exists(path, NULL)) return true;
    const char *cut = strrchr(path, '/');
    if (cut && cut != path) {
        char *parent = dup_n(path, (size_t)(cut - path));
        if (!wz_ensure(parent, mode)) return false;
    }
    if (wz_create(path, NULL, 0, mode, NULL)) return true;
    return wz_last_error == WAZOO_RECIPE_TYPES_ERROR_CODE_NODE_EXISTS;
}

/* ---- holds ---- */

static bool holds_count(const char *path, uint64_t *count) {
    wz_msg data;
    if (!wz_get(path, &data, NULL)) return false;
    *count = 1;
    if (data.len == 8) {
        *count = 0;
        for (int i = 7; i >= 0; i--) *count = (*count << 8) | data.ptr[i];
    }
    return true;
}

static bool holds_set(const char *path, uint64_t count) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(count >> (8 * i));
    return wz_set(path, le, 8, NULL);
}

bool wz_holds_add_one(const char *path) {
    uint64_t count;
    return holds_count(path, &count) && holds_set(path, count + 1);
}

bool wz_holds_release_one(const char *path, uint64_t *left) {
    uint64_t count;
    if (!holds_count(path, &count)) return false;
    *left = count - 1;
    return *left > 0 ? holds_set(path, *left) : wz_delete(path, NULL);
}

/* ---- names ---- */

char *wz_session_prefix(void) {
    uint64_t id = (uint64_t)wazoo_recipe_context_session_id();
    char *s = must(malloc(18));
    for (int i = 0; i < 16; i++) s[i] = "0123456789abcdef"[(id >> (60 - 4 * i)) & 0xf];
    s[16] = '-';
    s[17] = 0;
    return s;
}

char *wz_join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = must(malloc(la + lb + 2));
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

const char *wz_name_of(const char *path) {
    const char *cut = strrchr(path, '/');
    return cut ? cut + 1 : path;
}

bool wz_starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool wz_sequence(const char *name, uint64_t *seq) {
    size_t n = strlen(name);
    if (n < 10) return false;
    uint64_t v = 0;
    for (size_t i = n - 10; i < n; i++) {
        if (name[i] < '0' || name[i] > '9') return false;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *seq = v;
    return true;
}

static int by_sequence(const void *a, const void *b) {
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    uint64_t sx = UINT64_MAX, sy = UINT64_MAX;
    wz_sequence(x, &sx);
    wz_sequence(y, &sy);
    if (sx != sy) return sx < sy ? -1 : 1;
    return strcmp(x, y);
}

void wz_sort_by_sequence(char **names, size_t n) { qsort(names, n, sizeof *names, by_sequence); }

/* ---- the export ---- */

void exports_wazoo_recipe_runner_run(exports_wazoo_recipe_runner_invocation_t *inv,
                                     wz_outcome *ret) {
    wz_call call = {0};
    call.op = dup_n(inv->op.ptr, inv->op.len);
    call.args = (wz_msg){inv->args.ptr, inv->args.len};
    call.reason = inv->reason;
    bool ok = true;
    if (inv->state.is_some) {
        call.parked = true;
        reader r;
        wz_msg state = {inv->state.val.ptr, inv->state.val.len};
        char kind;
        uint64_t v;
        if (find(state, "deadline_ms", &r) == 1 && header(&r, &kind, &v) && (kind == 'i' || kind == 'u')) {
            call.has_deadline = true;
            call.deadline_ms = (int64_t)v;
        } else if (find(state, "deadline_ms", &r) != 1) {
            ok = wz_fail(call.op, ": parked state: no deadline_ms", NULL);
        }
    }
    memset(ret, 0, sizeof *ret);
    if (ok) ok = wz_run(&call, ret);
    if (!ok) {
        wz_out msg = {0};
        wz_put_str(&msg, fail_msg ? fail_msg : "aborted");
        memset(ret, 0, sizeof *ret);
        ret->tag = EXPORTS_WAZOO_RECIPE_RUNNER_OUTCOME_ABORT;
        ret->val.abort.ptr = msg.buf;
        ret->val.abort.len = msg.len;
    }
}
