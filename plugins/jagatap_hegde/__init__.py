"""Plugin package jagatap_hegde (components registered in later commits)."""
