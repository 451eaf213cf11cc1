/* nabla-gradcheck: float64 numerical gradient check of every registered op. */
#include "nabla.h"

int main(int argc, char **argv) { return nb_gradcheck_main(argc, argv); }
