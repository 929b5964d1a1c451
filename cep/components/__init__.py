"""cep's built-in components. This package is the `builtins` entry point of the `cep.plugins`
group: the registry loads it exactly as it loads a third-party plugin, collecting the marked
factories each kind's sub-package exports (its `__all__`)."""
from cep.components.operators import *  # noqa: F401,F403
from cep.components.patterns import *  # noqa: F401,F403
from cep.components.rules import *  # noqa: F401,F403
from cep.components.sinks import *  # noqa: F401,F403
from cep.components.sources import *  # noqa: F401,F403
from cep.components.venues import *  # noqa: F401,F403
