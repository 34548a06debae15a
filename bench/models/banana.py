"""The banana of vifit.examples.shapes as a model file: `vifit fit bench/models/banana.py`."""

from vifit.examples.shapes import banana

_t = banana()
log_density, dim, param_names, name = _t.log_density, _t.dim, list(_t.param_names), _t.name
