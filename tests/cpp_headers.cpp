// The public headers compiled as C++ (every one, then nabla.h again for
// its include guard), linked against libnabla and libnabla_data: one
// backward pass, y = sum(x * x) so dy/dx = 2x, and the brace-initialiser
// macros. Not a Criterion test: exit status 0 is a pass.
#include "nabla/data.h"
#include "nabla/gradcheck.h"
#include "nabla/graph.h"
#include "nabla/io.h"
#include "nabla/meprop.h"
#include "nabla/nn.h"
#include "nabla/noise.h"
#include "nabla/op.h"
#include "nabla/ops.h"
#include "nabla/optim.h"
#include "nabla/random.h"
#include "nabla/status.h"
#include "nabla/tape.h"
#include "nabla/tensor.h"
#include "nabla/threads.h"
#include "nabla.h"

#include <cstddef>
#include <cstdio>

static_assert(alignof(nb_sample) >= 16, "nb_sample::params keeps its 16-byte alignment");
static_assert(offsetof(nb_sample, params) % 16 == 0, "nb_sample::params is 16-byte aligned");

int main()
{
    nb_max_pool2d_params pool = NB_MAX_POOL2D_PARAMS(2, 2);
    nb_meprop meprop = NB_MEPROP_FRACTION(NB_MEPROP_TOPK, 0.5);
    if (pool.kernel[1] != 2 || meprop.k != 0 || nb_meprop_check(&meprop, "cpp") != NB_OK) {
        std::fprintf(stderr, "cpp_headers: initialiser macros: %s\n", nb_last_error());
        return 1;
    }

    nb_tape *tape = nb_tape_new();
    const int64_t shape[1] = {3};
    const double values[3] = {1.0, -2.0, 0.5};
    nb_tensor *x = nb_tape_tensor(tape, NB_FLOAT64, 1, shape, values);
    nb_tensor_set_requires_grad(x, true);
    nb_tensor *y = nb_sum(tape, nb_mul(tape, x, x));
    if (!y || nb_backward(tape, y, nullptr) != NB_OK) {
        std::fprintf(stderr, "cpp_headers: %s\n", nb_tape_error(tape));
        return 1;
    }
    int status = 0;
    for (int i = 0; i < 3; i++)
        if (nb_tensor_get(x->grad, i) != 2.0 * values[i]) status = 1;
    nb_tape_free(tape);

    nb_idx idx;
    if (nb_idx_load("/nonexistent-nabla-dir/images.idx", &idx) == NB_OK) status = 1;
    if (status) std::fprintf(stderr, "cpp_headers: wrong gradient or a missing file loaded\n");
    return status;
}
