// Atomic replacement of a file (atomic_file.h).
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

struct AtomicFile {
    char *path, *tmp;
    FILE *f;
    int io_errno;
};

static void af_free(AtomicFile *f) {
    free(f->path);
    free(f->tmp);
    free(f);
}

AtomicFile *atomic_open(const char *path, char *err, size_t errlen) {
    if (!path || !*path) {
        dino_errf(err, errlen, "output path is empty");
        return NULL;
    }
    AtomicFile *f = callocCheck(1, sizeof *f);
    size_t n = strlen(path);
    f->path = mallocCheck(n + 1);
    memcpy(f->path, path, n + 1);
    f->tmp = mallocCheck(n + 5);
    snprintf(f->tmp, n + 5, "%s.tmp", path);
    f->f = fopen(f->tmp, "wb");
    if (!f->f) {
        dino_errf(err, errlen, "cannot write %s: %s", f->tmp, strerror(errno));
        af_free(f);
        return NULL;
    }
    setvbuf(f->f, NULL, _IOFBF, 1 << 20);
    return f;
}

void atomic_write(AtomicFile *f, const void *p, size_t n) {
    if (f->io_errno || n == 0) return;
    errno = 0;
    if (fwrite(p, 1, n, f->f) != n) f->io_errno = errno ? errno : EIO;
}

static int fsync_parent_dir(const char *path) {
    char *dir = strdup(path);
    DINO_ASSERT(dir);
    char *slash = strrchr(dir, '/');
    if (!slash) strcpy(dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    // Some filesystems refuse fsync on a directory; the rename already happened.
    if (rc != 0 && (errno == EINVAL || errno == EROFS)) rc = 0;
    close(fd);
    return rc;
}

int atomic_commit(AtomicFile *f, char *err, size_t errlen) {
    errno = 0;
    if (!f->io_errno && fflush(f->f) != 0) f->io_errno = errno ? errno : EIO;
    if (!f->io_errno && fsync(fileno(f->f)) != 0) f->io_errno = errno ? errno : EIO;
    if (fclose(f->f) != 0 && !f->io_errno) f->io_errno = errno ? errno : EIO;
    f->f = NULL;
    if (f->io_errno) {
        dino_errf(err, errlen, "cannot write %s: %s (the previous file, if any, is untouched)",
                f->path, strerror(f->io_errno));
        unlink(f->tmp);
        af_free(f);
        return -1;
    }
    if (rename(f->tmp, f->path) != 0) {
        dino_errf(err, errlen, "cannot rename %s to %s: %s", f->tmp, f->path, strerror(errno));
        unlink(f->tmp);
        af_free(f);
        return -1;
    }
    if (fsync_parent_dir(f->path) != 0) {
        dino_errf(err, errlen, "wrote %s but could not fsync its directory: %s", f->path,
                strerror(errno));
        af_free(f);
        return -1;
    }
    af_free(f);
    return 0;
}

void atomic_abort(AtomicFile *f) {
    if (!f) return;
    if (f->f) fclose(f->f);
    unlink(f->tmp);
    af_free(f);
}
