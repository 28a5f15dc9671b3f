// Crash-safe file replacement shared by every writer in src/io: bytes go to
// PATH.tmp, then fflush, fsync, close, rename over PATH and fsync of the
// directory. Any failure (ENOSPC, EFBIG, EIO, a missing directory) removes the
// temporary file, reports one sentence, and leaves the previous PATH intact.
#ifndef DINO_ATOMIC_FILE_H
#define DINO_ATOMIC_FILE_H

#include <stddef.h>

typedef struct AtomicFile AtomicFile;

// NULL with err filled when PATH.tmp cannot be created.
AtomicFile *atomic_open(const char *path, char *err, size_t errlen);
// Buffers/writes; the first error is remembered and reported by commit.
void atomic_write(AtomicFile *f, const void *p, size_t n);
// Finishes and renames into place. 0, or -1 with err filled. Frees f.
int atomic_commit(AtomicFile *f, char *err, size_t errlen);
// Gives up: removes PATH.tmp. Frees f.
void atomic_abort(AtomicFile *f);

#endif
