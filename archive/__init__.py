"""The SQLite archive: its schema (one owner of the file format), the ArchiveActor, and export."""
