#include <stdint.h>
#include <string.h>

#include "autograd/tensor_map.h"
#include "nabla/status.h"

int nb_tensor_map_init(nb_tensor_map *map, nb_arena *arena, size_t count)
{
    size_t capacity = 16;
    while (capacity < 2 * count) capacity *= 2;
    map->entries = nb_arena_alloc(arena, capacity * sizeof *map->entries);
    if (!map->entries) return NB_ERR_NOMEM;
    memset(map->entries, 0, capacity * sizeof *map->entries);
    map->mask = capacity - 1;
    return NB_OK;
}

nb_tensor_map_entry *nb_tensor_map_slot(nb_tensor_map *map, const nb_tensor *key)
{
    /* Headers are at least 8-byte aligned; mix the bits above that. */
    uint64_t h = (uint64_t)(uintptr_t)key >> 3;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15u;
    for (size_t i = (size_t)(h >> 7) & map->mask;; i = (i + 1) & map->mask) {
        nb_tensor_map_entry *e = &map->entries[i];
        if (!e->key || e->key == key) return e;
    }
}

nb_tensor *nb_tensor_map_get(nb_tensor_map *map, const nb_tensor *key)
{
    nb_tensor_map_entry *e = nb_tensor_map_slot(map, key);
    return e->key ? e->value : NULL;
}
