"""De-identification for destinations marked ``deidentify:`` (PS3.15 Annex E) and
re-identification of what they send back.

``settings`` the destination's option, ``keys`` the keyed pseudonyms and their originals in
the index, ``profile`` the Basic profile on the way out, ``reidentify`` the way back.
"""

from dicom_node.deid.settings import DeidentifySettings

__all__ = ["DeidentifySettings"]
