// Small dense kernels for the per-row work around the BLAS calls in training (softmax rows,
// embedding gathers and scatters, Adam, the towers' element-wise passes), where a BLAS call's
// overhead exceeds its work. Each is compiled for AVX-512, AVX2+FMA and baseline x86-64 (or
// just the baseline elsewhere); the widest the CPU runs is chosen once, at load time.
#ifndef FORYOU_VECTOR_KERNELS_H
#define FORYOU_VECTOR_KERNELS_H

#include <stdint.h>

/// One Adam(W) step's constants: learning rate, decoupled weight decay, the moments' decay
/// rates and their bias corrections (1 - b^t).
typedef struct {
    float lr, wd, b1, b2, c1, c2;
} fy_adam_step;

/// The instruction set the kernels run with: "avx512", "avx2" or "baseline".
const char *fy_kernels_level(void);
/// Switches every kernel to `level` ("baseline", "avx2", "avx512") if this CPU runs it; returns
/// 0 (and changes nothing) otherwise. For tests that check each build against a reference;
/// not safe while kernels run on other threads.
int fy_kernels_use(const char *level);

/// Hints that the line at p is about to be read (gathers whose rows are known ahead).
static inline void fy_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/// A spin-wait hint to the CPU (PAUSE on x86), for threads polling a flag.
static inline void fy_spin_pause(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// y += a * x over n floats.
void fy_axpy(intptr_t n, float a, const float *x, float *y);
/// x *= a over n floats.
void fy_scale(float *x, intptr_t n, float a);
/// x[i] = e^x[i] (|relative error| < 3e-7 on [-87, 88]; below -87, including -inf, gives 0).
void fy_exp(float *x, intptr_t n);

/// One row of logits, in place: z = row - bias (entries set to -inf are excluded). Returns
/// log(sum(e^z)). With gradScale != 0 the row becomes gradScale * softmax(z); with 0 it becomes
/// e^(z - max z).
double fy_softmax_row(float *row, const float *bias, intptr_t n, float gradScale);

/// y += a * (sum of the rows rows[0..<count] of a row-major table with n columns); the rows
/// are requested ahead of use.
void fy_sum_rows(intptr_t n, float a, const float *table, const int32_t *rows, intptr_t count, float *y);

/// AdamW on n parameters; the gradient is reset to zero.
void fy_adam(float *p, float *g, float *m, float *v, intptr_t n, const fy_adam_step *s);
/// AdamW on the rows rows[0..<count] (d floats each) of row-major tables; gradients reset.
void fy_adam_rows(float *p, float *g, float *m, float *v, intptr_t d, const int32_t *rows, intptr_t count,
                  const fy_adam_step *s);

/// h = max(h + bias, 0) for `rows` rows of n (bias broadcast over rows).
void fy_bias_relu(float *h, const float *bias, intptr_t rows, intptr_t n);
/// dh = h > 0 ? dh : 0 (rows x n), and the result's column sums added to colsum.
void fy_relu_backward(const float *h, float *dh, intptr_t rows, intptr_t n, float *colsum);
/// y = y + bias + x, then each row normalised to unit length; norms[r] = max(|row|, 1e-12)
/// before normalising.
void fy_residual_normalize(float *y, const float *bias, const float *x, intptr_t rows, intptr_t n, float *norms);
/// Backward through y / |y|: dOut = (dOut - out (out . dOut)) / norm per row, with out the
/// normalised rows; the result's column sums added to colsum.
void fy_normalize_backward(const float *out, float *dOut, const float *norms, intptr_t rows, intptr_t n, float *colsum);

#endif
