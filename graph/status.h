/* Status codes shared by every Tandem object.
 *
 * Functions that can fail return an enum td_status (or NULL) and leave a
 * human-readable message on the object they were called on (the graph, the
 * plan, the reader ...), in the style of SQLite's error-on-the-handle. */
#ifndef TD_STATUS_H
#define TD_STATUS_H

enum td_status {
    TD_OK = 0,
    TD_ERR_NOMEM,   /* an allocation failed */
    TD_ERR_SHAPE,   /* shapes, ranks or axes do not fit the operation */
    TD_ERR_ARG,     /* a bad argument: NULL, a node of another graph, a bad value */
    TD_ERR_IO,      /* a file could not be opened, read or written */
    TD_ERR_FORMAT,  /* a file's content is corrupt, truncated or of the wrong kind */
    TD_ERR_BACKEND, /* oneDNN or HDF5 refused an operation */
    TD_ERR_NUMERIC, /* a NaN or infinity appeared where the caller asked to be told */
    TD_ERR_STATE,   /* the call is not allowed in the object's current state */
};

/* Longest message kept on a handle, including the terminating NUL. */
#define TD_MSG_MAX 512

/* A static, never-NULL name for a status ("TD_ERR_SHAPE"). */
const char *td_status_name(enum td_status s);

#endif
