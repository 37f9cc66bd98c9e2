"""The emulated Cloud Monitoring API: ListTimeSeries over sampled INFO, served over gRPC."""
