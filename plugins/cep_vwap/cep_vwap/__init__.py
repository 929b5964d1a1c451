"""cep-vwap: an example cep plugin with two operators, `vwap` and `spread_filter`.

Installed, this package is the entry point `vwap` of the group `cep.plugins`: cep registers the
marked factories found here. Each operator lives in its own module that imports only cep's
markers, the params base and the batch helpers, so a pipeline can also load one by path
(`plugins: [../plugins/cep_vwap/cep_vwap/volume.py]`) without installing anything.
"""
from cep_vwap.spread import spread_filter
from cep_vwap.volume import vwap

__all__ = ["spread_filter", "vwap"]
