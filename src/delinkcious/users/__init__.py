"""The users service: accounts, password hashes and sessions."""
