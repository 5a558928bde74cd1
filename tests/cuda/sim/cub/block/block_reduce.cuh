// simulator stand-in for CUB (see tests/cuda/sim/cub_sim.h)
#include "tests/cuda/sim/cub_sim.h"
