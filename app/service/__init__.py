"""Use cases: one function each, one transaction each.

Every function takes the session explicitly and opens its own transaction,
which commits only when the function returns; any error rolls all of it back.
"""
