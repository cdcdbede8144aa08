"""Plugin package datasets (components registered in later commits)."""
