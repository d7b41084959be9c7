/* Tandem: static computation graphs with forward- and reverse-mode rules on
 * every node, planned and run on multi-core CPUs with OpenMP and oneDNN.
 * Include this one header; link with `pkg-config --cflags --libs tandem`. */
#ifndef TANDEM_H
#define TANDEM_H

#include "graph/status.h"
#include "graph/shape.h"
#include "graph/rng.h"
#include "graph/graph.h"
#include "graph/autodiff.h"
#include "graph/taylor.h"
#include "graph/plan.h"
#include "ops/ops.h"
#include "ops/layers.h"
#include "optim/optim.h"
#include "optim/schedule.h"
#include "optim/reduce.h"
#include "optim/step_graph.h"
#include "optim/train.h"
#include "optim/tangent_model.h"
#include "optim/ntk.h"
#include "optim/ntvp.h"
#include "io/dataset.h"
#include "io/idx.h"
#include "io/h5data.h"
#include "io/weights.h"
#include "io/checkpoint.h"
#include "io/source.h"
#include "io/text.h"
#include "io/ntk_file.h"

#endif
