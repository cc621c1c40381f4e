"""Step 6: review decisions (authorization, escalation, the audit log) and the review queue's
store. The policy that decides who must review lives in `activities.policy`."""
