/* model/params.h — the parameter table (private to model/).
 * Defines: model_params_layout, model_params_views.
 * Tensors are HF-named, in checkpoint order per layer (attention, norms, then the FFN);
 * a layer's routed experts are grouped by projection so that stacked [E, ...] views work:
 * experts.0.gate_proj .. experts.{E-1}.gate_proj, then up_proj, then down_proj. */
#ifndef CRUCIBLE_MODEL_PARAMS_H
#define CRUCIBLE_MODEL_PARAMS_H

#include <stddef.h>

#include "model/layers.h"

/* malloc'd table of *n tensors totalling *n_params floats. */
ParamTensor *model_params_layout(const ModelConfig *c, int *n, size_t *n_params);
/* Fill views (layers: [L], caller-owned) of `base` laid out as `t`. */
void model_params_views(const ModelConfig *c, const ParamTensor *t, int n, float *base, ModelWeights *v);

#endif
