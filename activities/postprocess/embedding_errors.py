"""The error of an unusable embedding extractor, shared by `embedding` (which picks the
extractor) and `clap_embedding` (which loads CLAP), so neither imports the other for it."""

from __future__ import annotations


class EmbeddingExtractorError(RuntimeError):
    """The configured embedding extractor cannot be used (missing dependency, no weights, not a
    CLAP checkpoint). Raised at worker start and on first use; fix the settings or the files."""
