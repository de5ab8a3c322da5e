"""The links service: a user's saved links, their tags and check status."""
