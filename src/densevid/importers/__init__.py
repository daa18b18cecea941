"""Importing the features the field distributes into densevid's feature cache.

``densevid import FORMAT SOURCE... -o FEATURES`` turns the peers' released
features (TSP, C3D, TSN, BMT's I3D and VGGish, MDVC's HDF5, VidChapters' CLIP and
ASR) into ``FEATURES/<stream>/<video_id>.npy`` with a sidecar giving every row its
true time, so a model config's ``visual_features`` can name them. ``formats``
holds the layouts and timing, ``readers`` reads one video at a time, ``run`` pairs
ids with an annotation file and writes the cache.
"""

from densevid.importers.formats import FORMATS, Format, get_format, row_times
from densevid.importers.run import ImportReport, import_features

__all__ = [
    "FORMATS",
    "Format",
    "ImportReport",
    "get_format",
    "import_features",
    "row_times",
]
