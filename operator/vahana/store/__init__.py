"""Durable record of every task, attempt and worker: one interface, SQLite and PostgreSQL."""
