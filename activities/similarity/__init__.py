"""Step 5: fingerprint the output, match it against the reference catalog (`activities.catalog`)
and decide under the review policy (`activities.policy`) whether a human must review it."""
