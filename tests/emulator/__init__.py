"""Tests of the emulator (emulator/): its Memorystore and Monitoring APIs, faults, nodes, and the process."""
