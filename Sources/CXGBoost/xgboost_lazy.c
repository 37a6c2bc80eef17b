// Forwards fy_X to XGBoost's X, resolved from libxgboost.so.0 when first needed (see CXGBoost.h).
#include "CXGBoost.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#define XGB_FUNCTIONS(X) \
    X(XGBGetLastError) X(XGBoosterBoostedRounds) X(XGBoosterCreate) X(XGBoosterFeatureScore) \
    X(XGBoosterFree) X(XGBoosterLoadModelFromBuffer) X(XGBoosterPredict) X(XGBoosterSaveModelToBuffer) \
    X(XGBoosterSetParam) X(XGBoosterSlice) X(XGBoosterUpdateOneIter) X(XGDMatrixCreateFromMat) \
    X(XGDMatrixFree) X(XGDMatrixSetFloatInfo) X(XGDMatrixSetUIntInfo)

static struct {
#define FIELD(name) __typeof__(&name) name;
    XGB_FUNCTIONS(FIELD)
#undef FIELD
} api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded = 0;
static char failure[512] = "";

static void load(void) {
    void *lib = dlopen("libxgboost.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lib) lib = dlopen("libxgboost.so", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(failure, sizeof failure, "libxgboost cannot be loaded (Debian: libxgboost0, which libxgboost-dev brings): %s", why ? why : "unknown");
        return;
    }
#define RESOLVE(name) \
    api.name = (__typeof__(&name))dlsym(lib, #name); \
    if (!api.name) { snprintf(failure, sizeof failure, "libxgboost has no %s", #name); return; }
    XGB_FUNCTIONS(RESOLVE)
#undef RESOLVE
    loaded = 1;
}

static int ready(void) {
    pthread_once(&once, load);
    return loaded;
}

const char *fy_XGBGetLastError(void) { return ready() ? api.XGBGetLastError() : failure; }
int fy_XGBoosterBoostedRounds(BoosterHandle h, int *out) { return ready() ? api.XGBoosterBoostedRounds(h, out) : -1; }
int fy_XGBoosterCreate(const DMatrixHandle dmats[], bst_ulong len, BoosterHandle *out) {
    return ready() ? api.XGBoosterCreate(dmats, len, out) : -1;
}
int fy_XGBoosterFeatureScore(BoosterHandle h, const char *config, bst_ulong *n, char const ***features, bst_ulong *dim,
                             bst_ulong const **shape, float const **scores) {
    return ready() ? api.XGBoosterFeatureScore(h, config, n, features, dim, shape, scores) : -1;
}
int fy_XGBoosterFree(BoosterHandle h) { return ready() ? api.XGBoosterFree(h) : -1; }
int fy_XGBoosterLoadModelFromBuffer(BoosterHandle h, const void *buf, bst_ulong len) {
    return ready() ? api.XGBoosterLoadModelFromBuffer(h, buf, len) : -1;
}
int fy_XGBoosterPredict(BoosterHandle h, DMatrixHandle m, int mask, unsigned limit, int training, bst_ulong *len,
                        const float **out) {
    return ready() ? api.XGBoosterPredict(h, m, mask, limit, training, len, out) : -1;
}
int fy_XGBoosterSaveModelToBuffer(BoosterHandle h, char const *config, bst_ulong *len, char const **out) {
    return ready() ? api.XGBoosterSaveModelToBuffer(h, config, len, out) : -1;
}
int fy_XGBoosterSetParam(BoosterHandle h, const char *name, const char *value) {
    return ready() ? api.XGBoosterSetParam(h, name, value) : -1;
}
int fy_XGBoosterSlice(BoosterHandle h, int begin, int end, int step, BoosterHandle *out) {
    return ready() ? api.XGBoosterSlice(h, begin, end, step, out) : -1;
}
int fy_XGBoosterUpdateOneIter(BoosterHandle h, int iter, DMatrixHandle train) {
    return ready() ? api.XGBoosterUpdateOneIter(h, iter, train) : -1;
}
int fy_XGDMatrixCreateFromMat(const float *data, bst_ulong rows, bst_ulong cols, float missing, DMatrixHandle *out) {
    return ready() ? api.XGDMatrixCreateFromMat(data, rows, cols, missing, out) : -1;
}
int fy_XGDMatrixFree(DMatrixHandle h) { return ready() ? api.XGDMatrixFree(h) : -1; }
int fy_XGDMatrixSetFloatInfo(DMatrixHandle h, const char *field, const float *array, bst_ulong len) {
    return ready() ? api.XGDMatrixSetFloatInfo(h, field, array, len) : -1;
}
int fy_XGDMatrixSetUIntInfo(DMatrixHandle h, const char *field, const unsigned *array, bst_ulong len) {
    return ready() ? api.XGDMatrixSetUIntInfo(h, field, array, len) : -1;
}
