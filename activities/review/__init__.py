"""Step 6: the review policy and the recording of review decisions."""
