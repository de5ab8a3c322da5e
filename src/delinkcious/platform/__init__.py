"""Infrastructure shared by every service: configuration, databases, migrations."""
