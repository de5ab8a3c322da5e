"""The social graph service: who follows whom."""
