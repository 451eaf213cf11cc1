/* Per-call op scratch (include/nabla/op.h): a mark and a rewind of the
 * tape's arena around one forward or backward. */
#include "autograd/internal.h"

nb_op_scratch nb_op_scratch_begin(nb_op_ctx *ctx)
{
    nb_arena_mark mark = nb_arena_mark_now(&ctx->tape->arena);
    return (nb_op_scratch){mark.chunk, mark.offset, mark.used};
}

void nb_op_scratch_end(nb_op_ctx *ctx, nb_op_scratch mark)
{
    nb_arena_rewind(&ctx->tape->arena, (nb_arena_mark){mark.chunk, mark.offset, mark.used});
}
