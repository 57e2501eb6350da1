from .ssd import SSDPriorGenerator

__all__ = ["SSDPriorGenerator"]
