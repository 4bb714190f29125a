"""grouped-users: a small directory of user records and group memberships."""

__version__ = "0.1.0"
