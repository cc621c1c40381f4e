"""Takedown activities: quarantine, restore or remove a published asset; audit and notify."""
