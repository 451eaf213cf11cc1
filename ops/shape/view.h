/* Internal: the forward and backward of the view ops (reshape, flatten,
 * squeeze, unsqueeze). Their output shares the input's buffer
 * (NB_OP_VIEW), so forward copies nothing and backward is dx += dy, or
 * dx = dy into a fresh gradient buffer; recorded, dx is dy reshaped. */
#ifndef NABLA_OPS_SHAPE_VIEW_H
#define NABLA_OPS_SHAPE_VIEW_H

#include "nabla/op.h"

int nb_view_forward(nb_op_ctx *ctx);
int nb_view_backward(nb_op_ctx *ctx);
/* backward_ops: dx = dy viewed in x's shape. */
int nb_view_backward_ops(nb_op_ctx *ctx, nb_tensor *g, nb_tensor **grads);

#endif
