// XGBoost's C API (Debian's libxgboost-dev), loaded on first use: the learned second stage is
// the only user of libxgboost, and linking it outright cost every foryou process (a server, a
// score-all) about 4 MB of resident memory for the library and its dependencies.
// `fy_X` calls XGBoost's `X`; the first call loads libxgboost.so.0 (an error code and
// `fy_XGBGetLastError` naming what failed when it cannot be loaded).
#pragma once
#include <xgboost/c_api.h>

const char *fy_XGBGetLastError(void);
int fy_XGBoosterBoostedRounds(BoosterHandle handle, int *out);
int fy_XGBoosterCreate(const DMatrixHandle dmats[], bst_ulong len, BoosterHandle *out);
int fy_XGBoosterFeatureScore(BoosterHandle handle, const char *config, bst_ulong *out_n_features,
                             char const ***out_features, bst_ulong *out_dim, bst_ulong const **out_shape,
                             float const **out_scores);
int fy_XGBoosterFree(BoosterHandle handle);
int fy_XGBoosterLoadModelFromBuffer(BoosterHandle handle, const void *buf, bst_ulong len);
int fy_XGBoosterPredict(BoosterHandle handle, DMatrixHandle dmat, int option_mask, unsigned ntree_limit,
                        int training, bst_ulong *out_len, const float **out_result);
int fy_XGBoosterSaveModelToBuffer(BoosterHandle handle, char const *config, bst_ulong *out_len,
                                  char const **out_dptr);
int fy_XGBoosterSetParam(BoosterHandle handle, const char *name, const char *value);
int fy_XGBoosterSlice(BoosterHandle handle, int begin_layer, int end_layer, int step, BoosterHandle *out);
int fy_XGBoosterUpdateOneIter(BoosterHandle handle, int iter, DMatrixHandle dtrain);
int fy_XGDMatrixCreateFromMat(const float *data, bst_ulong nrow, bst_ulong ncol, float missing, DMatrixHandle *out);
int fy_XGDMatrixFree(DMatrixHandle handle);
int fy_XGDMatrixSetFloatInfo(DMatrixHandle handle, const char *field, const float *array, bst_ulong len);
int fy_XGDMatrixSetUIntInfo(DMatrixHandle handle, const char *field, const unsigned *array, bst_ulong len);
