// OpenBLAS's CBLAS interface plus its extensions (thread count, core name).
#include <cblas.h>

// A read prefetch hint, for gathers of embedding rows whose indices are known ahead.
static inline void foryou_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
// The same hint for lines about to be written.
static inline void foryou_prefetch_write(const void *p) { __builtin_prefetch(p, 1, 3); }
