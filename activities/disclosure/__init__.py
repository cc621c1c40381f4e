"""Disclosure of AI generation, shared by the steps: the inaudible watermark, C2PA signing and
the deployment's disclosure identity (watermark key, signing identity).

Postprocess marks and signs the deliverables; `tunesmith watermark` / `tunesmith verify` read
them back.
"""
