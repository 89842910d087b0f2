/*
 * fuzz.h - what the pieces of the raw-file fuzz target share (test/fuzz/).
 *
 *   fuzz_file.c  LLVMFuzzerTestOneInput: one input is one database file
 *   mkseeds.c    the seed corpus: real databases made through kvmap.h
 *   driver.c     a main() running the target without libFuzzer (the test)
 */
#ifndef KVMAP_FUZZ_H
#define KVMAP_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Inputs larger than this are ignored (each input must stay fast). */
#define KVFUZZ_MAX_INPUT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Recompute, in place, every checksum of a database image: each branch,
 * leaf and overflow page's, then each meta's commit_pages/commit_sum (the
 * pages its transaction wrote, as kvmap_open counts them, when fix_commit)
 * and its own.  So a mutated file gets past the checksums and reaches the
 * code behind them.  Returns 0, or -1 when no page size can be told. */
int kvfuzz_fix_checksums(uint8_t *data, size_t size, int fix_commit);

/* Write the seed databases into dir (which must exist); each file's name is
 * printed to stdout when verbose.  Returns the number written, or -1. */
int kvfuzz_make_seeds(const char *dir, int verbose);

#endif
