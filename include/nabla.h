/* nabla: reverse-mode automatic differentiation in C11. One include for
 * the whole public API. */
#ifndef NABLA_H
#define NABLA_H

#include "nabla/status.h"
#include "nabla/random.h"
#include "nabla/tensor.h"
#include "nabla/tape.h"
#include "nabla/op.h"
#include "nabla/ops.h"
#include "nabla/paths.h"
#include "nabla/gradcheck.h"
#include "nabla/threads.h"
#include "nabla/nn.h"
#include "nabla/io.h"
#include "nabla/optim.h"
#include "nabla/checkpoint.h"
#include "nabla/meprop.h"
#include "nabla/graph.h"
#include "nabla/noise.h"

#endif
