"""Report models and their renderings (table, JSON, Markdown); no Google client imports."""
