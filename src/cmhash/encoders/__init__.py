"""Feature extractors that turn raw images and captions into the features cmhash datasets hold.

transformers is imported only when an encoder is built, so importing this package stays cheap.
"""

from cmhash.encoders.checkpoint import check_checkpoint
from cmhash.encoders.clip import ClipEncoder, load_image
from cmhash.encoders.manifest import Manifest, read_manifest
from cmhash.encoders.mat_sources import DchmtSource, DcmhSource
from cmhash.encoders.pipeline import EncodeSummary, Issue, encode_manifest, encode_source, output_paths
from cmhash.encoders.sources import ItemSource, ManifestSource

__all__ = ["ClipEncoder", "DchmtSource", "DcmhSource", "EncodeSummary", "Issue", "ItemSource", "Manifest",
           "ManifestSource", "check_checkpoint", "encode_manifest", "encode_source", "load_image", "output_paths",
           "read_manifest"]
