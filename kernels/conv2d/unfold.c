/* conv2d's input gradient by unfolding, for the implicit-GEMM path
 * (kernels/conv2d/implicit.h): per image,
 *   dcol [C*kh*kw, OH*OW] = W^T dy        (register tiles, depth K)
 *   dx[c, oh+i-ph, ow+j-pw] += dcol[(c,i,j), (oh,ow)]   (col2im, rows of OW)
 * Every multiply-add is useful, unlike the transposed convolution, whose
 * padding of dy by k-1 makes it multiply zeros for small output planes. */
#include <string.h>

#include "kernels/conv2d/implicit.h"
#include "kernels/conv2d/rows.h"
#include "kernels/conv2d/tiles.h"

enum { LANES = 16 };

static int64_t round_up(int64_t x, int64_t multiple) { return (x + multiple - 1) / multiple * multiple; }

static const int TILE_ROWS[3] = {8, 6, 4}, TILE_VECTORS[3] = {3, 4, 6};

/* The tile shape that wastes least on rounding depth and plane up. */
static int best_shape(int64_t depth, int64_t plane, int64_t *lanes)
{
    int best = 0;
    for (int s = 0; s < 3; s++) {
        int64_t cost = round_up(depth, TILE_ROWS[s]) * round_up(plane, TILE_VECTORS[s] * LANES);
        if (s == 0 || cost < *lanes) {
            *lanes = cost;
            best = s;
        }
    }
    return best;
}

int64_t nb_conv_unfold_cost(const nb_conv2d_geometry *g)
{
    int64_t depth = g->C * g->kh * g->kw, lanes = 0;
    best_shape(depth, g->OH * g->OW, &lanes);
    /* The GEMM, plus col2im: one masked load and add per tap per dx
     * vector (about two multiply-adds' worth of time each). */
    return lanes * g->K + 2 * g->kh * g->kw * g->C * g->H * round_up(g->W, LANES);
}

int nb_conv_unfold_init(const nb_workspace *ws, nb_conv_unfold *u, const nb_conv2d_geometry *g,
                        const float *w)
{
    *u = (nb_conv_unfold){.g = g, .depth = g->C * g->kh * g->kw, .plane = g->OH * g->OW};
    int64_t lanes = 0;
    int shape = best_shape(u->depth, u->plane, &lanes);
    u->rows = TILE_ROWS[shape];
    u->vectors = TILE_VECTORS[shape];
    u->columns = round_up(u->plane, (int64_t)u->vectors * LANES);
    u->blocks = (u->depth + u->rows - 1) / u->rows;
    u->offset = nb_workspace_alloc(ws, (size_t)g->K * sizeof *u->offset);
    u->packed = nb_workspace_alloc(ws, (size_t)(u->blocks * g->K * u->rows) * sizeof *u->packed);
    if (!u->offset || !u->packed) return NB_ERR_NOMEM;
    for (int64_t k = 0; k < g->K; k++) u->offset[k] = k * u->columns;
    /* w [K, depth]: the transposed blocks, zero past depth. */
    for (int64_t block = 0; block < u->blocks; block++)
        for (int64_t k = 0; k < g->K; k++)
            for (int r = 0; r < u->rows; r++) {
                int64_t d = block * u->rows + r;
                u->packed[(block * g->K + k) * u->rows + r] = d < u->depth ? w[k * u->depth + d] : 0.0f;
            }
    return NB_OK;
}

int64_t nb_conv_unfold_scratch(const nb_conv_unfold *u)
{
    return (u->g->K + u->blocks * u->rows) * u->columns;
}

void nb_conv_unfold_image(const nb_conv_unfold *u, const float *dy, float *dx, float *scratch,
                          bool assign)
{
    /* dy rows padded with zeros to whole tiles, so tiles never read past. */
    nb_conv_rows_pad(dy, u->plane, u->plane, scratch, u->columns, 0, u->g->K);
    nb_conv_unfold_copied(u, dx, scratch, assign);
}

void nb_conv_unfold_copied(const nb_conv_unfold *u, float *dx, float *scratch, bool assign)
{
    const nb_conv2d_geometry *g = u->g;
    float *copy = scratch, *dcol = scratch + g->K * u->columns;
    int64_t step = (int64_t)u->vectors * LANES;
    for (int64_t block = 0; block < u->blocks; block++)
        for (int64_t p0 = 0; p0 < u->columns; p0 += step)
            nb_conv_tile_forward(u->rows, u->vectors, g->K, u->offset,
                                 u->packed + block * g->K * u->rows, copy + p0,
                                 dcol + block * u->rows * u->columns + p0, u->columns);
    nb_conv_col2im(g, dcol, u->columns, dx, assign);
}
