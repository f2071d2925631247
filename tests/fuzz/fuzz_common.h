/* tests/fuzz/fuzz_common.h — what the libFuzzer harnesses share: invariant checks that
 * abort (libFuzzer then keeps the input as a crash), a scratch folder removed at exit, and
 * a reader that splits an input into the values of a record.
 */
#ifndef TFS_FUZZ_COMMON_H
#define TFS_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "record.h"

/* An invariant of the code under test: a failure is a finding, reported and aborted on. */
#define FUZZ_CHECK(cond, ...)                                                              \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* libFuzzer's entry points, defined by each harness. */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A folder of its own under $TMPDIR, made once, removed with what is in it at exit. */
const char *fuzz_scratch_dir(const char *name);
/* Writes len bytes to dir/name (folders on the way made); 0 or -1. */
int fuzz_write_file(const char *dir, const char *name, const void *data, size_t len);
/* Removes dir's files and folders below it (not dir). */
void fuzz_empty_dir(const char *dir);

/* The lines of an input, one value a line: "\N" is null; a line "i:...", "f:...", "s:...",
 * "d:...", "b:..." gives a value of that type (int64, float64, text, decimal, bool)
 * whatever the field's type, so mistyped values are fuzzed too; other lines are text of
 * the field's own type (an int64 field parses them, a float64 field too, bool "1"/"t").
 * Lines past the entity's fields are ignored, missing ones are null. NULL when out of
 * memory. Texts live in the arena. */
tfs_record *fuzz_record_from_lines(tfs_arena *a, const tfs_sdk_entity *e, const uint8_t *data,
                                   size_t size);

/* json_equal, but numbers compared by value: 0 and 0.0 are the same number (integers
 * exactly, a real against an integer as doubles). */
#include <jansson.h>
bool fuzz_json_same(const json_t *a, const json_t *b);

/* Whether s is valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF). */
bool fuzz_utf8_valid(const char *s, size_t len);

#endif
