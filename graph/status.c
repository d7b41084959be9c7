#include "graph/status.h"

const char *td_status_name(enum td_status s)
{
    switch (s) {
    case TD_OK:
        return "TD_OK";
    case TD_ERR_NOMEM:
        return "TD_ERR_NOMEM";
    case TD_ERR_SHAPE:
        return "TD_ERR_SHAPE";
    case TD_ERR_ARG:
        return "TD_ERR_ARG";
    case TD_ERR_IO:
        return "TD_ERR_IO";
    case TD_ERR_FORMAT:
        return "TD_ERR_FORMAT";
    case TD_ERR_BACKEND:
        return "TD_ERR_BACKEND";
    case TD_ERR_NUMERIC:
        return "TD_ERR_NUMERIC";
    case TD_ERR_STATE:
        return "TD_ERR_STATE";
    }
    return "TD_ERR_UNKNOWN";
}
