"""CrossGuard policy pack for Memorystore Redis instances."""
