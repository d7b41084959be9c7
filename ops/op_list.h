/* The op table: one TD_OP(name) line per op, naming td_op_<name> defined in
 * ops/<name>.c. Everything that loops over ops (tests, tools) reads this. */

/* elementwise and binary */
TD_OP(add)
TD_OP(sub)
TD_OP(mul)
TD_OP(div)
TD_OP(affine)
TD_OP(exp)
TD_OP(log)
TD_OP(tanh)
TD_OP(sigmoid)
TD_OP(relu)
TD_OP(gelu)
TD_OP(sqrt)
TD_OP(rsqrt)
TD_OP(square)
TD_OP(abs)
TD_OP(sign)
TD_OP(step)

/* structural, reduction, matmul and loss */
TD_OP(matmul)
TD_OP(broadcast_to)
TD_OP(reduce_sum)
TD_OP(reduce_mean)
TD_OP(reshape)
TD_OP(transpose)
TD_OP(softmax)
TD_OP(log_softmax)
TD_OP(one_hot)
TD_OP(softmax_cross_entropy)
TD_OP(linear)

/* fused kernels of derivative rules (appended: earlier ops keep their test
 * seeds, which test_ops derives from the position in this list) */
TD_OP(mask_positive)
TD_OP(softmax_cross_entropy_grad)

/* sequence models (GPT) */
TD_OP(slice)
TD_OP(pad)
TD_OP(concat)
TD_OP(embedding)
TD_OP(embedding_grad)
TD_OP(dropout)

/* GELU: the tanh approximation (formerly td_gelu, now the exact form) and
 * the fused derivative ops of both */
TD_OP(gelu_tanh)
TD_OP(gelu_grad)
TD_OP(gelu_tanh_grad)
TD_OP(gelu_second)

/* attention: causal softmax and the fused softmax Jacobian product */
TD_OP(softmax_apply)
TD_OP(causal_softmax)

/* layer normalisation and its fused derivative ops */
TD_OP(normalize)
TD_OP(normalize_grad)
TD_OP(layer_norm)
TD_OP(layer_norm_grad)
TD_OP(layer_norm_dgamma)

/* 2-D convolution (NCHW) and its two derivative ops */
TD_OP(conv2d)
TD_OP(conv2d_grad_input)
TD_OP(conv2d_grad_weight)

/* 2-D pooling (NCHW) and the derivative ops of max and average pooling */
TD_OP(max_pool2d)
TD_OP(max_pool2d_select)
TD_OP(max_pool2d_scatter)
TD_OP(avg_pool2d)
TD_OP(avg_pool2d_grad)

/* a product accumulated onto a buffer (the rules of matmul and linear) */
TD_OP(matmul_add)

/* attention on packed heads (no split or merge copies) */
TD_OP(attn_scores)
TD_OP(attn_mix)
