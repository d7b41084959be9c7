#include "ops/op.h"

const struct td_op_def *const td_op_table[] = {
#define TD_OP(name) &td_op_##name,
#include "ops/op_list.h"
#undef TD_OP
    NULL,
};

const int td_op_count = (int)(sizeof(td_op_table) / sizeof(td_op_table[0])) - 1;
