from .delta_xywh import DeltaXYWHCoder

__all__ = ["DeltaXYWHCoder"]
