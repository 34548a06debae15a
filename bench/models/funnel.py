"""Neal's 2-d funnel of vifit.examples.shapes as a model file: `vifit fit bench/models/funnel.py`."""

from vifit.examples.shapes import funnel

_t = funnel(2)
log_density, dim, param_names, name = _t.log_density, _t.dim, list(_t.param_names), _t.name
