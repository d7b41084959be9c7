/* What embedding and embedding_grad share: the checks of their ids. */
#ifndef TD_EMBEDDING_H
#define TD_EMBEDDING_H

#include "ops/op.h"

/* Shape rule part: ids are TD_I32 of rank 1 to TD_MAX_DIMS - 1 (the output
 * adds the embedding axis). Records the error on n and returns
 * TD_ERR_SHAPE otherwise. */
enum td_status td_embedding_ids_shape(struct td_node *n, const struct td_node *ids);

/* Kernel part: 1 when every id of ids[0 .. count) is in [0, rows);
 * otherwise reports the first bad one in order ("id 91 at position 17 is
 * outside the table's 73 rows", td_exec_fail with TD_ERR_ARG) and returns
 * 0, whatever the thread count. */
int td_embedding_ids_valid(const struct td_exec *ex, const int32_t *ids, int64_t count,
                           int64_t rows);

#endif
