"""Local stand-in for the Memorystore admin API and Cloud Monitoring, backed by real redis-server."""
