/* Internal: a map from tensors to tensors for one gradient sweep (nb_grad),
 * open addressing keyed by address, in the tape's arena. A tensor header
 * is unique among the live tensors of a step, so its address is a key. */
#ifndef NABLA_INTERNAL_TENSOR_MAP_H
#define NABLA_INTERNAL_TENSOR_MAP_H

#include <stddef.h>

#include "autograd/arena.h"
#include "nabla/tensor.h"

typedef struct nb_tensor_map_entry {
    const nb_tensor *key;
    nb_tensor *value;
} nb_tensor_map_entry;

typedef struct nb_tensor_map {
    nb_tensor_map_entry *entries;
    size_t mask;               /* capacity - 1, a power of two */
} nb_tensor_map;

/* Room for `count` keys at most half full. NB_ERR_NOMEM on failure. */
int nb_tensor_map_init(nb_tensor_map *map, nb_arena *arena, size_t count);
/* The entry for key, which is empty (key NULL) when absent: set its key
 * and value to insert. Never fails: capacity was fixed by init. */
nb_tensor_map_entry *nb_tensor_map_slot(nb_tensor_map *map, const nb_tensor *key);
/* The value for key, or NULL. */
nb_tensor *nb_tensor_map_get(nb_tensor_map *map, const nb_tensor *key);

#endif
