"""vision-mamba: state-space vision backbones on one shared selective-scan kernel."""
from . import kernels
from .kernels import selective_scan

__version__ = "0.1.0"
__all__ = ["kernels", "selective_scan", "__version__"]
