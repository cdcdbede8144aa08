"""Plugin package dante (components registered in later commits)."""
