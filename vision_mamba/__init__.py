"""vision-mamba: state-space vision backbones on one shared selective-scan kernel.

`import vision_mamba` registers every model of the zoo with timm (`timm.create_model("vim_small_patch16_224")`).
"""
from . import kernels, models
from .kernels import selective_scan
from .models import list_models

__version__ = "0.1.0"
__all__ = ["kernels", "list_models", "models", "selective_scan", "__version__"]
