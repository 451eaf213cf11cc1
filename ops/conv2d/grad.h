/* Internal: the backward_ops of conv2d (plain and fused), conv_transpose2d
 * and conv1d. The three gradients close over each other: conv2d's input
 * gradient is a conv_transpose2d, conv_transpose2d's is a conv2d, and both
 * weight gradients are a conv2d of the batch-transposed operands, so every
 * order of derivative is again made of these ops. */
#ifndef NABLA_OPS_CONV2D_GRAD_H
#define NABLA_OPS_CONV2D_GRAD_H

#include "nabla/op.h"

int nb_conv2d_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads);
int nb_conv_transpose2d_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads);
int nb_conv1d_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads);

#endif
