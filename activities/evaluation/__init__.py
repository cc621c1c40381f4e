"""Offline evaluations and the promotion guard: they run the pipeline's steps in one process.

This package sits above the steps: it may import any step, and nothing in `activities` imports
it (the CLI and the tests do).

- `controls`: `tunesmith eval controls`, adherence of rendered audio to its controls.
- `similarity`: `tunesmith eval similarity`, recall per transformation and false positives.
- `watermark`: `tunesmith eval watermark`, watermark bit accuracy after common transforms.
- `guard`: the regression guard run by `tunesmith models promote`.
"""
