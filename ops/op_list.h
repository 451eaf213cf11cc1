NB_OP(nb_op_add)
NB_OP(nb_op_relu)
