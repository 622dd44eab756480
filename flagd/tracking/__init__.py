"""The tracking plan: what events mean, checked as they arrive, and what really arrives."""
