/* Research outputs in HDF5 (curvature spectra, tracked curvature, kernel
 * predictions): named float64 or float32 arrays and string attributes on
 * the root, written to "<path>.tmp" and renamed over path, so path is
 * always a complete file; and 1-D float64 arrays read back (to continue a
 * series when a run resumes). h5py reads them as numpy arrays. */
#ifndef TD_RESULTS_H
#define TD_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "graph/shape.h"
#include "graph/status.h"

/* One array: exactly one of f64 and f32 is set. */
struct td_result_array {
    const char *name;
    const double *f64;
    const float *f32;
    struct td_shape shape;
};

struct td_result_attr {
    const char *name, *value;
};

/* Writes the arrays and attributes (and framework = "tandem", version).
 * TD_ERR_IO, TD_ERR_BACKEND or TD_ERR_ARG (an array with no data) with a
 * message naming the path. */
enum td_status td_results_save(const char *path, const struct td_result_array *a, int n,
                               const struct td_result_attr *attrs, int n_attrs, char *err,
                               size_t errlen);

/* Reads the 1-D float64 array `name` into a new array *data of *n elements
 * (free with free()). TD_ERR_IO for a missing file, TD_ERR_FORMAT for a
 * missing or non-float or non-1-D dataset, TD_ERR_NOMEM. */
enum td_status td_results_read(const char *path, const char *name, double **data, int64_t *n,
                               char *err, size_t errlen);

#endif
