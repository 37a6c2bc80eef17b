// The kernel bodies (kernels_body.h) compiled once per instruction set, and the dispatch.
#include "CVectorKernels.h"
#include <math.h>
#include <stddef.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef int32_t v16i __attribute__((vector_size(64)));
#define LOAD(p) (*(const v16u *)(p))
#define STORE(p, v) (*(v16u *)(p) = (v))

// Helpers taking 64-byte vectors are always inlined into kernels built for the same target.
#pragma clang diagnostic ignored "-Wpsabi"

#if defined(__x86_64__)
#define FY(name) name##_avx512
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))), apply_to = function)
#include "kernels_body.h"
#pragma clang attribute pop
#undef FY

#define FY(name) name##_avx2
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#include "kernels_body.h"
#pragma clang attribute pop
#undef FY
#endif

#define FY(name) name##_baseline
#include "kernels_body.h"
#undef FY

typedef struct {
    const char *level;
    void (*axpy)(intptr_t, float, const float *, float *);
    void (*scale)(float *, intptr_t, float);
    void (*exp)(float *, intptr_t);
    double (*softmax_row)(float *, const float *, intptr_t, float);
    void (*sum_rows)(intptr_t, float, const float *, const int32_t *, intptr_t, float *);
    void (*adam)(float *, float *, float *, float *, intptr_t, const fy_adam_step *);
    void (*adam_rows)(float *, float *, float *, float *, intptr_t, const int32_t *, intptr_t, const fy_adam_step *);
    void (*bias_relu)(float *, const float *, intptr_t, intptr_t);
    void (*relu_backward)(const float *, float *, intptr_t, intptr_t, float *);
    void (*residual_normalize)(float *, const float *, const float *, intptr_t, intptr_t, float *);
    void (*normalize_backward)(const float *, float *, const float *, intptr_t, intptr_t, float *);
} fy_kernel_table;

#define TABLE(suffix, name)                                                                                       \
    {name, fy_axpy_##suffix, fy_scale_##suffix, fy_exp_##suffix, fy_softmax_row_##suffix, fy_sum_rows_##suffix, \
     fy_adam_##suffix, fy_adam_rows_##suffix, fy_bias_relu_##suffix, fy_relu_backward_##suffix,                  \
     fy_residual_normalize_##suffix, fy_normalize_backward_##suffix}

static fy_kernel_table K = TABLE(baseline, "baseline");

#if defined(__x86_64__)
// Every feature each build is compiled for.
static int fy_cpu_runs_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
static int fy_cpu_runs_avx512(void) {
    return fy_cpu_runs_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
}
#endif

const char *fy_kernels_level(void) { return K.level; }

int fy_kernels_use(const char *level) {
    if (strcmp(level, "baseline") == 0) {
        fy_kernel_table t = TABLE(baseline, "baseline");
        K = t;
        return 1;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (strcmp(level, "avx2") == 0 && fy_cpu_runs_avx2()) {
        fy_kernel_table t = TABLE(avx2, "avx2");
        K = t;
        return 1;
    }
    if (strcmp(level, "avx512") == 0 && fy_cpu_runs_avx512()) {
        fy_kernel_table t = TABLE(avx512, "avx512");
        K = t;
        return 1;
    }
#endif
    return 0;
}

// At load: the widest build this CPU runs (the table starts at baseline).
__attribute__((constructor)) static void fy_kernels_select(void) {
    if (!fy_kernels_use("avx512")) fy_kernels_use("avx2");
}

void fy_axpy(intptr_t n, float a, const float *x, float *y) { K.axpy(n, a, x, y); }
void fy_scale(float *x, intptr_t n, float a) { K.scale(x, n, a); }
void fy_exp(float *x, intptr_t n) { K.exp(x, n); }
double fy_softmax_row(float *row, const float *bias, intptr_t n, float gradScale) {
    return K.softmax_row(row, bias, n, gradScale);
}
void fy_sum_rows(intptr_t n, float a, const float *table, const int32_t *rows, intptr_t count, float *y) {
    K.sum_rows(n, a, table, rows, count, y);
}
void fy_adam(float *p, float *g, float *m, float *v, intptr_t n, const fy_adam_step *s) { K.adam(p, g, m, v, n, s); }
void fy_adam_rows(float *p, float *g, float *m, float *v, intptr_t d, const int32_t *rows, intptr_t count,
                  const fy_adam_step *s) {
    K.adam_rows(p, g, m, v, d, rows, count, s);
}
void fy_bias_relu(float *h, const float *bias, intptr_t rows, intptr_t n) { K.bias_relu(h, bias, rows, n); }
void fy_relu_backward(const float *h, float *dh, intptr_t rows, intptr_t n, float *colsum) {
    K.relu_backward(h, dh, rows, n, colsum);
}
void fy_residual_normalize(float *y, const float *bias, const float *x, intptr_t rows, intptr_t n, float *norms) {
    K.residual_normalize(y, bias, x, rows, n, norms);
}
void fy_normalize_backward(const float *out, float *dOut, const float *norms, intptr_t rows, intptr_t n, float *colsum) {
    K.normalize_backward(out, dOut, norms, rows, n, colsum);
}
