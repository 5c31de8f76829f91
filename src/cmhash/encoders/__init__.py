"""Feature extractors that turn raw images and captions into the features cmhash datasets hold.

transformers is imported only when an encoder is built, so importing this package stays cheap.
"""

from cmhash.encoders.checkpoint import check_checkpoint
from cmhash.encoders.clip import ClipEncoder, load_image
from cmhash.encoders.manifest import Manifest, read_manifest
from cmhash.encoders.pipeline import EncodeSummary, Issue, encode_manifest, output_paths

__all__ = ["ClipEncoder", "EncodeSummary", "Issue", "Manifest", "check_checkpoint", "encode_manifest", "load_image",
           "output_paths", "read_manifest"]
