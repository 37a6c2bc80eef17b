// LAPACK's C interface (Debian's liblapacke on top of OpenBLAS's LAPACK).
#include <lapacke.h>
