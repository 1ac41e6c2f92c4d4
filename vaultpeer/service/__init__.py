"""The service ring: the vault and everything that works on it (store, vault, replication,
commands, files, bundles, backups, imports, the device's home and key files). Imports the core and
itself, never io/ or the front ends (tests/test_layers.py)."""
