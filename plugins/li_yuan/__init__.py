"""Plugin package li_yuan (components registered in later commits)."""
