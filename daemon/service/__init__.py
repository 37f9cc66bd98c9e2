"""The long-running daemon: app, scheduler, results, health, logs, metrics, HTTP server, status page, web config."""
