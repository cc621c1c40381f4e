"""The reference catalog, shared by the steps: recordings, their Chromaprint fingerprints and
melody profiles, and the indexes that find them.

- `chromaprint`: fingerprints through `fpcalc`; `fingerprint_index`: matching them.
- `melody`: the musical detector; `melody_index`: its candidate window index.
- `ingest`: adding reference recordings; `store`: the catalog's PostgreSQL access.

Similarity checks against it, takedown adds removed assets to it, publish names its
fingerprint algorithm in the provenance record.
"""
