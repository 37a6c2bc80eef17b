// XGBoost's C API (Debian's libxgboost-dev): gradient-boosted trees for the learned second stage.
#include <xgboost/c_api.h>
