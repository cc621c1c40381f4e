"""Step 7: publish the approved master with provenance, and charge the tenant once."""
