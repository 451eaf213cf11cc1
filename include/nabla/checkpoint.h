/* nabla: checkpoints that resume training exactly.
 *
 * A checkpoint is a list of named pieces of training state, registered by
 * pointer: tensors (parameters, buffers, optimizer moments), integers
 * (step counters, a loader's position), doubles, booleans, generator
 * states and tags (strings that must match, such as an optimizer's kind).
 * nb_checkpoint_save reads every registered piece and writes them to one
 * file; nb_checkpoint_load reads the file back into the same pointers. The
 * helpers register whole objects under a prefix: a module's state_dict
 * (nb_checkpoint_add_module), an optimizer's state, hyper-parameters, step
 * counts and gradient-noise generator (nb_checkpoint_add_optimizer), a
 * learning-rate schedule, and, in nabla_data, a loader's position
 * (nb_checkpoint_add_loader). A user's own counters go in with
 * nb_checkpoint_add_int and friends.
 *
 *   nb_checkpoint *ck = nb_checkpoint_new();
 *   nb_checkpoint_add_module(ck, "model", model);
 *   nb_checkpoint_add_optimizer(ck, "optimizer", opt);
 *   nb_checkpoint_add_int(ck, "step", &step);
 *   nb_checkpoint_add_rng(ck, "rng.global", nb_rng_global());
 *   if (resuming) nb_checkpoint_load(ck, path);   ... train ...
 *   nb_checkpoint_save(ck, path);
 *
 * The file is safetensors (nabla/io.h): tensors under their registered
 * names (model.conv1.weight, optimizer.state.0.momentum_buffer, as
 * PyTorch's state_dicts name them), everything else as "__metadata__"
 * strings ("int 938", "double 0.050000000000000003", "rng ..."), plus a
 * format marker and a 64-bit FNV-1a checksum over every name, shape and
 * byte. Saving writes "<path>.tmp", fsyncs it, renames it over `path`
 * and fsyncs the directory: a crash at any moment leaves the old file or
 * the new one, never a torn one.
 *
 * Loading is all or nothing: the file must parse, carry the marker, match
 * its checksum (a flipped bit anywhere is caught), hold exactly the
 * registered entries (a missing one or an extra one means another model or
 * optimizer) with the same kinds, dtypes and shapes, and match every tag;
 * only then is anything written. Errors name the file and the entry, e.g.
 * "checkpoint: run.ckpt: 'model.fc1.weight' has shape [120, 400] in the
 * file and [84, 120] here". */
#ifndef NABLA_CHECKPOINT_H
#define NABLA_CHECKPOINT_H
#include "nabla/export.h"
#include <stdbool.h>
#include <stdint.h>
#include "nabla/nn.h"
#include "nabla/optim.h"
#include "nabla/random.h"
#include "nabla/tensor.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct nb_checkpoint nb_checkpoint;

NB_API nb_checkpoint *nb_checkpoint_new(void);
NB_API void nb_checkpoint_free(nb_checkpoint *checkpoint);

/* Registrations. The checkpoint copies the name and keeps the pointer,
 * which must stay valid while the checkpoint is used: register a module
 * after nb_module_to_dtype (which replaces its tensors), as an optimizer
 * is made after it. Names are unique,
 * non-empty, printable ASCII, and must not start with "nabla.". A failed
 * registration (NULL pointer, bad or duplicate name, out of memory) is
 * remembered: save and load then fail with its message. */
NB_API int nb_checkpoint_add_tensor(nb_checkpoint *ck, const char *name, nb_tensor *tensor);
NB_API int nb_checkpoint_add_int(nb_checkpoint *ck, const char *name, int64_t *value);
NB_API int nb_checkpoint_add_double(nb_checkpoint *ck, const char *name, double *value);
NB_API int nb_checkpoint_add_bool(nb_checkpoint *ck, const char *name, bool *value);
/* The whole generator state, including a pending normal of the pair. */
NB_API int nb_checkpoint_add_rng(nb_checkpoint *ck, const char *name, nb_rng *rng);
/* A string that the file must hold unchanged (it is never written on
 * load): the checkpoint of an "adam" optimizer does not load into "sgd". */
NB_API int nb_checkpoint_add_tag(nb_checkpoint *ck, const char *name, const char *value);

/* A module's parameters and buffers as "<prefix>.<state_dict name>", and
 * the mask counter of each dropout layer as "<prefix>.<layer>.dropout_seed". */
NB_API int nb_checkpoint_add_module(nb_checkpoint *ck, const char *prefix, nb_module *module);
/* An optimizer's kind (tag "<prefix>.kind"), lr and hyper-parameters,
 * step count, gradient-noise setting and generator, and per parameter i
 * its step count ("<prefix>.state.i.step") and state buffers
 * ("<prefix>.state.i.momentum_buffer", "exp_avg", "exp_avg_sq",
 * "max_exp_avg_sq", "square_avg", "grad_avg", "sum": PyTorch's names).
 * The parameters themselves belong to the module. */
NB_API int nb_checkpoint_add_optimizer(nb_checkpoint *ck, const char *prefix, nb_optimizer *optimizer);
/* A schedule's kind (a tag) and its fields: a run resumes on the same
 * curve, and a checkpoint of another schedule does not load. */
NB_API int nb_checkpoint_add_schedule(nb_checkpoint *ck, const char *prefix, nb_lr_schedule *schedule);

/* Writes every registered entry to `path` atomically (see above). */
NB_API int nb_checkpoint_save(const nb_checkpoint *ck, const char *path);
/* Reads `path` into the registered entries, or changes nothing. */
NB_API int nb_checkpoint_load(nb_checkpoint *ck, const char *path);

#ifdef __cplusplus
}
#endif
#endif
