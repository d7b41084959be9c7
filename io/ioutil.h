/* Helpers shared by the io/ readers and writers (not installed): message
 * formatting into a caller's buffer and the durable replace of a file. */
#ifndef TD_IOUTIL_H
#define TD_IOUTIL_H

#include <stddef.h>

#include "graph/status.h"

/* printf into err (when err != NULL and errlen > 0) and return `status`, so a
 * failing path is one line: `return td_io_errf(TD_ERR_IO, err, errlen, ...)`. */
enum td_status td_io_errf(enum td_status status, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes "<path>.tmp" into tmp (tmplen bytes). TD_ERR_ARG when it does not fit. */
enum td_status td_io_tmp_path(const char *path, char *tmp, size_t tmplen, char *err, size_t errlen);

/* Creates (or truncates) path and writes the n pieces bufs[i] of lens[i]
 * bytes into it, in order, checking every write and the close. TD_ERR_IO
 * with the system's reason ("No space left on device"); a partial file may
 * be left behind for the caller to remove. */
enum td_status td_io_write_file(const char *path, const void *const *bufs, const size_t *lens,
                                int n, char *err, size_t errlen);

/* Makes the closed file `tmp` durable (fsync), renames it over `path` and
 * fsyncs the directory, so `path` is always either the old or the new file.
 * On failure `tmp` is removed and `path` is untouched; TD_ERR_IO. */
enum td_status td_io_commit(const char *tmp, const char *path, char *err, size_t errlen);

#endif
