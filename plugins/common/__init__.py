"""Plugin package common (components registered in later commits)."""
