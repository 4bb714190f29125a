"""HTTP plumbing app.api and app.scim both build on: who the caller is, sessions, bodies.

Neither app.api nor app.scim is imported here.
"""
