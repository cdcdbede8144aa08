"""Plugin package oymak_asif (components registered in later commits)."""
