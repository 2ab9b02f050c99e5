"""The RoPA: typed models, loading with every problem at once, Art. 30 completeness lint."""

from sweeper.ropa.load import LoadedRopa, load_ropa, ropa_digest
from sweeper.ropa.model import Ropa

__all__ = ["LoadedRopa", "Ropa", "load_ropa", "ropa_digest"]
