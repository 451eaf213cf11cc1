/* nabla_data linked against the shared libnabla, which exports only the
 * public API: the loader must use nothing else. Parses a 3-byte IDX vector
 * and prints one line (a link or lookup failure fails before). */
#include <stdio.h>

#include "nabla.h"
#include "nabla/data.h"

int main(void)
{
    /* Magic 00 00 08 01 (unsigned byte, 1-D), one dim of 3, then 3 bytes. */
    const unsigned char file[] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9};
    nb_idx idx;
    if (nb_idx_parse(file, sizeof file, "memory", &idx) != NB_OK) {
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    int ok = idx.count == 3 && idx.data[0] == 7 && idx.data[2] == 9;
    nb_idx_free(&idx);
    printf("data_shared_link: %s\n", ok ? "ok" : "wrong values");
    return ok ? 0 : 1;
}
