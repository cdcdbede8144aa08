"""Plugin package zhang_gd (components registered in later commits)."""
