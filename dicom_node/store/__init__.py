"""Durable file store and the SQL index over it."""
