from .ssd_extra import SSDExtraLayers

__all__ = ["SSDExtraLayers"]
