/* wazoo_guest for C: write a wazoo recipe in C (clang + wasi-libc, bindings from `wit-bindgen c`),
 * the twin of the Rust crate in guest-sdk/. A recipe defines
 *
 *     bool wz_run(const wz_call *call, wz_outcome *out);
 *
 * which fills `out` with wz_done() or wz_park() and returns true, or returns false after
 * wz_fail() to abort the call (nothing it staged is written; the client gets the message). Tree
 * accesses return false on a ZooKeeper error and set wz_fail() to the error's name ("no-node"),
 * with the code in wz_last_error, so `if (!wz_get(...)) return false;` passes it on.
 *
 * Arguments, outputs and abort messages are MessagePack, as for the Rust and Python SDKs: the same
 * clients call a C recipe. Memory: everything is malloc'd and never freed: the host makes a fresh
 * instance for every call and drops it afterwards. Strings are NUL-terminated.
 *
 * Build: guest-sdk/README.md ("C") and scripts/build-c-recipe.sh. */
#ifndef WAZOO_GUEST_H
#define WAZOO_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "recipe.h"

typedef exports_wazoo_recipe_runner_outcome_t wz_outcome;
typedef wazoo_recipe_types_stat_t wz_stat;
typedef wazoo_recipe_types_error_code_t wz_error;

/* One MessagePack value or map: where its bytes are. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} wz_msg;

/* One run of the recipe: the client's call, or a re-run of a parked one. */
typedef struct {
    const char *op;
    /* The arguments: a MessagePack map (empty if the client sent none). */
    wz_msg args;
    /* EXPORTS_WAZOO_RECIPE_RUNNER_REASON_{INITIAL,WOKEN,TIMED_OUT,CANCELLED}. */
    uint8_t reason;
    /* A re-run of a parked call: its deadline as the first run fixed it, if any. */
    bool parked;
    bool has_deadline;
    int64_t deadline_ms;
} wz_call;

/* The recipe's entry point (defined by the recipe). */
bool wz_run(const wz_call *call, wz_outcome *out);

/* ---- aborting ---- */
/* Makes the call abort with the message a, b, c joined (NULLs skipped); returns false. */
bool wz_fail(const char *a, const char *b, const char *c);
/* The error code of the last failed tree access. */
extern wz_error wz_last_error;
/* An error code's WIT name ("no-node"). */
const char *wz_error_name(wz_error e);

/* ---- arguments ---- */
/* Looks up `key` in the map `m`: 1 and the value, 0 if absent or nil, -1 (and wz_fail) if `m` is not
 * a map or the value is not of the type asked for. */
int wz_arg_str(const wz_call *call, const char *key, char **out);
int wz_arg_int(const wz_call *call, const char *key, int64_t *out);
int wz_arg_bool(const wz_call *call, const char *key, bool *out);

/* ---- MessagePack output ---- */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
} wz_out;
void wz_put_map(wz_out *o, uint32_t entries);
void wz_put_str(wz_out *o, const char *s);
void wz_put_int(wz_out *o, int64_t v);
void wz_put_uint(wz_out *o, uint64_t v);
void wz_put_bool(wz_out *o, bool v);
void wz_put_nil(wz_out *o);

/* ---- outcomes ---- */
/* Commit the staged writes; the client gets `output` (one MessagePack value). Returns true. */
bool wz_done(wz_outcome *out, const wz_out *output);
/* Commit the staged writes and wait until the one watch (tag: WAZOO_RECIPE_TYPES_WATCH_*) on
 * `path` fires or the deadline passes, then run again with the deadline kept. Returns true. */
bool wz_park(wz_outcome *out, uint8_t watch_tag, const char *path, bool has_deadline,
             int64_t deadline_ms);
/* The deadline of a wait of `timeout_ms` (<= 0: none): fixed by the first run, kept across
 * re-runs. Sets *has. */
int64_t wz_deadline(const wz_call *call, bool has_timeout, int64_t timeout_ms, bool *has);

/* ---- the tree (as of the call plus its staged writes; writes are staged) ---- */
bool wz_get(const char *path, wz_msg *data, wz_stat *stat);
/* Whether `path` exists (its stat in *stat if non-NULL). */
bool wz_exists(const char *path, wz_stat *stat);
/* The children, sorted by name; wz_children_or_none: none if `path` does not exist. */
bool wz_children(const char *path, char ***names, size_t *n);
bool wz_children_or_none(const char *path, char ***names, size_t *n);
/* The children in creation order (by sequence), or none: the waiters of a lock. */
bool wz_queue(const char *path, char ***names, size_t *n);
/* Stages a create (mode: WAZOO_RECIPE_TYPES_CREATE_MODE_*); *created: the path (with a
 * sequential node's suffix) if `created` is non-NULL. */
bool wz_create(const char *path, const uint8_t *data, size_t len, uint8_t mode, char **created);
/* Stages a setData / delete (`version`: the expected version, NULL: any). */
bool wz_set(const char *path, const uint8_t *data, size_t len, const int32_t *version);
bool wz_delete(const char *path, const int32_t *version);
/* Stages `path` and any missing ancestors as `mode` nodes. */
bool wz_ensure(const char *path, uint8_t mode);

/* ---- reentrant holds (8 little-endian bytes of a waiter node's data, as the Rust SDK) ---- */
extern const uint8_t WZ_HOLDS_ONE[8];
bool wz_holds_add_one(const char *path);
bool wz_holds_release_one(const char *path, uint64_t *left);

/* ---- names ---- */
/* The calling session as 16 hex digits and a dash. */
char *wz_session_prefix(void);
/* "a/b". */
char *wz_join(const char *a, const char *b);
/* The last path segment. */
const char *wz_name_of(const char *path);
/* Whether `s` starts with `prefix`. */
bool wz_starts_with(const char *s, const char *prefix);
/* The sequence ZooKeeper appended (the last ten digits), if there is one. */
bool wz_sequence(const char *name, uint64_t *seq);
/* Sorts names by sequence (names without one last, by name). */
void wz_sort_by_sequence(char **names, size_t n);

#endif
