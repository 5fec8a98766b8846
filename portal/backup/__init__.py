"""Backup and restore: one archive holding the database dump and every stored object."""
