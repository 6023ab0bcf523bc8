"""Scoring predictions against labels as the contract's section 5 says."""
