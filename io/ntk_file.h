/* NTK files: a kernel written tile by tile as it is computed (optim/ntk.h),
 * so a kernel larger than memory goes straight to disk. Layout, for h5py:
 *   ntk         float32 [n1, n2, K, K], [n1, n2] (trace), [n, K, K] or [n]
 *               (diagonal), contiguous
 *   x1_index    int64 [n1]: the sample index of each row in its set
 *   x2_index    int64 [n2]
 *   root attributes (strings): framework = "tandem", version, and whatever
 *   the caller adds (method, model, weights, ...).
 * The file is written as "<path>.tmp" and renamed over path by
 * td_ntk_file_commit, so path only ever holds a complete kernel. */
#ifndef TD_NTK_FILE_H
#define TD_NTK_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "graph/shape.h"
#include "graph/status.h"

struct td_ntk_file;

/* Creates the temporary file and the datasets; *f is NULL on error.
 * Errors: TD_ERR_IO (cannot create), TD_ERR_BACKEND, TD_ERR_NOMEM, with a
 * message naming the path. */
enum td_status td_ntk_file_create(struct td_ntk_file **f, const char *path,
                                  const struct td_shape *shape, const int64_t *x1_index, int64_t n1,
                                  const int64_t *x2_index, int64_t n2, char *err, size_t errlen);

/* Writes rows [i0, i0 + ni) and columns [j0, j0 + nj) of the kernel (the
 * first two axes; a diagonal kernel has one: j0 and nj are ignored) from
 * data laid out [ni, nj, ...rest of the shape] or [ni, ...]. */
enum td_status td_ntk_file_write(struct td_ntk_file *f, int64_t i0, int64_t ni, int64_t j0,
                                 int64_t nj, const float *data, char *err, size_t errlen);

/* A string attribute on the root. */
enum td_status td_ntk_file_attr(struct td_ntk_file *f, const char *name, const char *value,
                                char *err, size_t errlen);

/* Closes, syncs and renames over path; frees f. On error the temporary
 * file is removed. */
enum td_status td_ntk_file_commit(struct td_ntk_file *f, char *err, size_t errlen);

/* Closes and removes the temporary file; frees f. NULL is a no-op. */
void td_ntk_file_abort(struct td_ntk_file *f);

#endif
