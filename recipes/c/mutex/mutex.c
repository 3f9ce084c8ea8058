/* The mutex recipe in C: the twin of recipes/mutex (Rust), same layout, ops and outputs, so the
 * same clients and tests drive either.
 *
 * The lock at a path is a container whose children are the waiters, one ephemeral sequential node
 * per session named `<session id, 16 hex digits>-<sequence>`: the holder is the lowest sequence. A
 * waiter parks until its predecessor's node is deleted, so a release wakes exactly one waiter.
 * Re-acquiring by the holding session counts (8 little-endian bytes of the node's data).
 *
 * - `acquire {path, timeout_ms?}` -> `{acquired: true, node}`, or after the timeout
 *   `{acquired: false, node: nil}` (the waiter is gone then).
 * - `release {path}` -> `{held}`: the holds the session still has; abort `not held`. */
#include <string.h>

#include "wazoo_guest.h"

static bool lock_path(const wz_call *call, char **lock) {
    int got = wz_arg_str(call, "path", lock);
    if (got == 0) return wz_fail(call->op, ": arguments: missing field `path`", NULL);
    return got > 0;
}

static bool acquired(wz_outcome *out, const char *node) {
    wz_out o = {0};
    wz_put_map(&o, 2);
    wz_put_str(&o, "acquired");
    wz_put_bool(&o, node != NULL);
    wz_put_str(&o, "node");
    if (node) wz_put_str(&o, node);
    else wz_put_nil(&o);
    return wz_done(out, &o);
}

static bool acquire(const wz_call *call, wz_outcome *out) {
    char *lock;
    int64_t timeout_ms = 0;
    if (!lock_path(call, &lock)) return false;
    int has_timeout = wz_arg_int(call, "timeout_ms", &timeout_ms);
    if (has_timeout < 0) return false;
    char *mine = wz_session_prefix();
    char **waiters;
    size_t n;
    if (!wz_queue(lock, &waiters, &n)) return false;
    const char *existing = NULL;
    for (size_t i = 0; i < n && !existing; i++)
        if (wz_starts_with(waiters[i], mine)) existing = waiters[i];
    const char *own = existing;
    if (!own) {
        if (call->reason != EXPORTS_WAZOO_RECIPE_RUNNER_REASON_INITIAL)
            return wz_fail("the waiter is gone", NULL, NULL); /* its session lost it */
        char *created;
        if (!wz_ensure(lock, WAZOO_RECIPE_TYPES_CREATE_MODE_CONTAINER)) return false;
        if (!wz_create(wz_join(lock, mine), WZ_HOLDS_ONE, sizeof WZ_HOLDS_ONE,
                       WAZOO_RECIPE_TYPES_CREATE_MODE_EPHEMERAL_SEQUENTIAL, &created))
            return false;
        own = wz_name_of(created);
        waiters[n++] = (char *)own; /* wz_children leaves a spare slot */
    }
    char *own_path = wz_join(lock, own);
    size_t at = 0;
    while (strcmp(waiters[at], own) != 0) at++;
    if (at == 0) {
        if (existing && call->reason == EXPORTS_WAZOO_RECIPE_RUNNER_REASON_INITIAL &&
            !wz_holds_add_one(own_path)) /* the session holds it already: one more hold */
            return false;
        return acquired(out, own_path);
    }
    if (call->reason == EXPORTS_WAZOO_RECIPE_RUNNER_REASON_TIMED_OUT) {
        if (!wz_delete(own_path, NULL)) return false;
        return acquired(out, NULL);
    }
    bool has_deadline;
    int64_t deadline = wz_deadline(call, has_timeout > 0, timeout_ms, &has_deadline);
    return wz_park(out, WAZOO_RECIPE_TYPES_WATCH_NODE_DELETED, wz_join(lock, waiters[at - 1]),
                   has_deadline, deadline);
}

static bool release(const wz_call *call, wz_outcome *out) {
    char *lock;
    if (!lock_path(call, &lock)) return false;
    char **waiters;
    size_t n;
    if (!wz_queue(lock, &waiters, &n)) return false;
    if (n == 0 || !wz_starts_with(waiters[0], wz_session_prefix()))
        return wz_fail("not held", NULL, NULL);
    uint64_t left;
    if (!wz_holds_release_one(wz_join(lock, waiters[0]), &left)) return false;
    wz_out o = {0};
    wz_put_map(&o, 1);
    wz_put_str(&o, "held");
    wz_put_uint(&o, left);
    return wz_done(out, &o);
}

bool wz_run(const wz_call *call, wz_outcome *out) {
    if (strcmp(call->op, "acquire") == 0) return acquire(call, out);
    if (strcmp(call->op, "release") == 0) return release(call, out);
    return wz_fail("no op ", call->op, NULL);
}
