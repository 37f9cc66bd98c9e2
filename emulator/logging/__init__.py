"""The emulator's stand-in for Cloud Logging: the Admin Activity audit log of the Memorystore calls it serves."""
