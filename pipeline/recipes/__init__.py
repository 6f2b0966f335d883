"""Model-family recipes driven by the engine. Importing this package registers every family."""

from pipeline.recipes import rbm  # noqa: F401
from pipeline.recipes import gan  # noqa: F401
from pipeline.recipes import ebm  # noqa: F401
from pipeline.recipes import bm  # noqa: F401
from pipeline.recipes import dbn  # noqa: F401
from pipeline.recipes import dbm  # noqa: F401
