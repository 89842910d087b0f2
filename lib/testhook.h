/*
 * testhook.h - semi-private seams for kvmap's own tests (not installed).
 *
 * The functions here are exported with the kvmap__ prefix so that the test
 * programs can reach them; applications must not use them.
 */
#ifndef KVMAP_TESTHOOK_H
#define KVMAP_TESTHOOK_H

#include "kvmap.h"

/*
 * Called with the database file's descriptor just before each flush of that
 * file (the single msync of a durable commit, and the flush that creates a
 * file), after every byte of the commit, meta page included, has been written
 * to the shared map.  Reading the file through fd (pread) at that moment
 * shows exactly what the flush is about to make durable.  NULL removes it.
 * Process-wide; not thread-safe to change while transactions run.
 */
typedef void kvmap__sync_hook_fn(void *ctx, int fd);
KVMAP_API void kvmap__set_sync_hook(kvmap__sync_hook_fn *fn, void *ctx);

#endif
