"""Policies as data, shared by the steps: the review policy (`review`), which similarity applies
to recommend a review and the review step consults for reviewer roles."""
