// Kernel bodies, included by kernels.c once per instruction set: FY(name) names each copy, and
// the target attribute in force at the include decides what the vector code compiles to.
// v16 is 16 floats: one AVX-512 register, two AVX2 registers or four SSE registers.

#define FY_INLINE static inline __attribute__((always_inline))

FY_INLINE v16 FY(splat)(float a) {
    v16 v = {0};
    return v + a;
}

FY_INLINE float FY(hsum)(v16 v) {
    float s = 0;
    for (int l = 0; l < 16; l++) s += v[l];
    return s;
}

FY_INLINE float FY(hmax)(v16 v) {
    float s = v[0];
    for (int l = 1; l < 16; l++) s = v[l] > s ? v[l] : s;
    return s;
}

/// e^x per lane: Cody-Waite reduction x = n ln2 + r (n rounded with the 1.5 * 2^23 trick),
/// the Cephes expf polynomial on r, and 2^n built in the exponent bits. NaN stays NaN (the
/// clamp below would turn it into a number), so a diverging model shows in its loss.
FY_INLINE v16 FY(exp16)(v16 x) {
    const v16 in = x;
    v16i nan = x != x;
    v16i dead = x < FY(splat)(-87.0f);
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, FY(splat)(-87.0f)), FY(splat)(88.0f));
    const v16 magic = FY(splat)(12582912.0f);
    v16 t = x * 1.44269504088896341f + magic;
    v16 n = t - magic;
    v16 r = x - n * 0.693359375f;
    r = r - n * -2.12194440054690583e-4f;
    v16 p = FY(splat)(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v16i ni = (v16i)t - 0x4B400000;
    v16 scale = (v16)((ni + 127) << 23);
    return (v16)(((v16i)(p * scale) & ~dead & ~nan) | ((v16i)in & nan));
}

FY_INLINE float FY(exp1)(float x) {
    v16 t = FY(splat)(-INFINITY);
    t[0] = x;
    return FY(exp16)(t)[0];
}

void FY(fy_axpy)(intptr_t n, float a, const float *x, float *y) {
    intptr_t i = 0;
    for (; i + 16 <= n; i += 16) STORE(y + i, LOAD(y + i) + a * LOAD(x + i));
    for (; i < n; i++) y[i] += a * x[i];
}

void FY(fy_scale)(float *x, intptr_t n, float a) {
    intptr_t i = 0;
    for (; i + 16 <= n; i += 16) STORE(x + i, LOAD(x + i) * a);
    for (; i < n; i++) x[i] *= a;
}

void FY(fy_exp)(float *x, intptr_t n) {
    intptr_t i = 0;
    for (; i + 16 <= n; i += 16) STORE(x + i, FY(exp16)(LOAD(x + i)));
    for (; i < n; i++) x[i] = FY(exp1)(x[i]);
}

double FY(fy_softmax_row)(float *row, const float *bias, intptr_t n, float gradScale) {
    intptr_t i = 0;
    v16 mx = FY(splat)(-INFINITY);
    for (; i + 16 <= n; i += 16) mx = __builtin_elementwise_max(mx, LOAD(row + i) - LOAD(bias + i));
    float m = FY(hmax)(mx);
    for (; i < n; i++) {
        float z = row[i] - bias[i];
        m = z > m ? z : m;
    }
    v16 acc = {0};
    const v16 shift = FY(splat)(m);
    for (i = 0; i + 16 <= n; i += 16) {
        v16 e = FY(exp16)(LOAD(row + i) - LOAD(bias + i) - shift);
        STORE(row + i, e);
        acc += e;
    }
    float sum = FY(hsum)(acc);
    for (; i < n; i++) {
        float e = FY(exp1)(row[i] - bias[i] - m);
        row[i] = e;
        sum += e;
    }
    if (gradScale != 0) FY(fy_scale)(row, n, gradScale / sum);
    return (double)m + log((double)sum);
}

void FY(fy_sum_rows)(intptr_t n, float a, const float *table, const int32_t *rows, intptr_t count, float *y) {
    intptr_t j = 0;
    const intptr_t ahead = 6;
    for (; j + 64 <= n; j += 64) {
        v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (intptr_t k = 0; k < count; k++) {
            if (k + ahead < count) {
                const float *q = table + (intptr_t)rows[k + ahead] * n + j;
                __builtin_prefetch(q, 0, 3);
                __builtin_prefetch(q + 16, 0, 3);
                __builtin_prefetch(q + 32, 0, 3);
                __builtin_prefetch(q + 48, 0, 3);
            }
            const float *r = table + (intptr_t)rows[k] * n + j;
            a0 += LOAD(r);
            a1 += LOAD(r + 16);
            a2 += LOAD(r + 32);
            a3 += LOAD(r + 48);
        }
        STORE(y + j, LOAD(y + j) + a * a0);
        STORE(y + j + 16, LOAD(y + j + 16) + a * a1);
        STORE(y + j + 32, LOAD(y + j + 32) + a * a2);
        STORE(y + j + 48, LOAD(y + j + 48) + a * a3);
    }
    for (; j + 16 <= n; j += 16) {
        v16 a0 = {0};
        for (intptr_t k = 0; k < count; k++) a0 += LOAD(table + (intptr_t)rows[k] * n + j);
        STORE(y + j, LOAD(y + j) + a * a0);
    }
    for (; j < n; j++) {
        float t = 0;
        for (intptr_t k = 0; k < count; k++) t += table[(intptr_t)rows[k] * n + j];
        y[j] += a * t;
    }
}

FY_INLINE void FY(adam_span)(float *p, float *g, float *m, float *v, intptr_t n, const fy_adam_step *s) {
    const float b1 = s->b1, b2 = s->b2, lr = s->lr, wd = s->wd, ic1 = 1 / s->c1, ic2 = 1 / s->c2;
    intptr_t i = 0;
    for (; i + 16 <= n; i += 16) {
        v16 gv = LOAD(g + i);
        v16 mv = b1 * LOAD(m + i) + (1 - b1) * gv;
        v16 vv = b2 * LOAD(v + i) + (1 - b2) * gv * gv;
        v16 pv = LOAD(p + i);
        STORE(m + i, mv);
        STORE(v + i, vv);
        STORE(p + i, pv - lr * (mv * ic1 / (__builtin_elementwise_sqrt(vv * ic2) + 1e-8f) + wd * pv));
        STORE(g + i, FY(splat)(0));
    }
    for (; i < n; i++) {
        float gi = g[i];
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= lr * (m[i] * ic1 / (__builtin_sqrtf(v[i] * ic2) + 1e-8f) + wd * p[i]);
        g[i] = 0;
    }
}

void FY(fy_adam)(float *p, float *g, float *m, float *v, intptr_t n, const fy_adam_step *s) {
    FY(adam_span)(p, g, m, v, n, s);
}

void FY(fy_adam_rows)(float *p, float *g, float *m, float *v, intptr_t d, const int32_t *rows, intptr_t count,
                      const fy_adam_step *s) {
    // The rows are scattered over the tables: their lines (parameter, gradient, two moments)
    // are requested a few rows ahead.
    const intptr_t ahead = 4;
    for (intptr_t k = 0; k < count; k++) {
        if (k + ahead < count) {
            intptr_t next = (intptr_t)rows[k + ahead] * d;
            for (intptr_t o = 0; o < d; o += 16) {
                __builtin_prefetch(p + next + o, 1, 3);
                __builtin_prefetch(g + next + o, 1, 3);
                __builtin_prefetch(m + next + o, 1, 3);
                __builtin_prefetch(v + next + o, 1, 3);
            }
        }
        intptr_t lo = (intptr_t)rows[k] * d;
        FY(adam_span)(p + lo, g + lo, m + lo, v + lo, d, s);
    }
}

void FY(fy_bias_relu)(float *h, const float *bias, intptr_t rows, intptr_t n) {
    const v16 zero = {0};
    for (intptr_t r = 0; r < rows; r++) {
        float *x = h + r * n;
        intptr_t j = 0;
        for (; j + 16 <= n; j += 16) STORE(x + j, __builtin_elementwise_max(LOAD(x + j) + LOAD(bias + j), zero));
        for (; j < n; j++) {
            float t = x[j] + bias[j];
            x[j] = t > 0 ? t : 0;
        }
    }
}

void FY(fy_relu_backward)(const float *h, float *dh, intptr_t rows, intptr_t n, float *colsum) {
    const v16 zero = {0};
    for (intptr_t r = 0; r < rows; r++) {
        const float *x = h + r * n;
        float *d = dh + r * n;
        intptr_t j = 0;
        for (; j + 16 <= n; j += 16) {
            v16i keep = LOAD(x + j) > zero;
            v16 dv = (v16)((v16i)LOAD(d + j) & keep);
            STORE(d + j, dv);
            STORE(colsum + j, LOAD(colsum + j) + dv);
        }
        for (; j < n; j++) {
            if (!(x[j] > 0)) d[j] = 0;
            colsum[j] += d[j];
        }
    }
}

void FY(fy_residual_normalize)(float *y, const float *bias, const float *x, intptr_t rows, intptr_t n, float *norms) {
    for (intptr_t r = 0; r < rows; r++) {
        float *o = y + r * n;
        const float *xr = x + r * n;
        v16 ss = {0};
        intptr_t j = 0;
        for (; j + 16 <= n; j += 16) {
            v16 t = LOAD(o + j) + LOAD(bias + j) + LOAD(xr + j);
            STORE(o + j, t);
            ss += t * t;
        }
        float s = FY(hsum)(ss);
        for (; j < n; j++) {
            o[j] += bias[j] + xr[j];
            s += o[j] * o[j];
        }
        float nrm = __builtin_sqrtf(s);
        nrm = nrm > 1e-12f ? nrm : 1e-12f;
        norms[r] = nrm;
        FY(fy_scale)(o, n, 1 / nrm);
    }
}

void FY(fy_normalize_backward)(const float *out, float *dOut, const float *norms, intptr_t rows, intptr_t n, float *colsum) {
    for (intptr_t r = 0; r < rows; r++) {
        const float *o = out + r * n;
        float *d = dOut + r * n;
        v16 acc = {0};
        intptr_t j = 0;
        for (; j + 16 <= n; j += 16) acc += LOAD(o + j) * LOAD(d + j);
        float dp = FY(hsum)(acc);
        for (; j < n; j++) dp += o[j] * d[j];
        const float inv = 1 / norms[r];
        for (j = 0; j + 16 <= n; j += 16) {
            v16 t = (LOAD(d + j) - LOAD(o + j) * dp) * inv;
            STORE(d + j, t);
            STORE(colsum + j, LOAD(colsum + j) + t);
        }
        for (; j < n; j++) {
            d[j] = (d[j] - o[j] * dp) * inv;
            colsum[j] += d[j];
        }
    }
}

#undef FY_INLINE
