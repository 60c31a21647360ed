"""Support code for the tests: real servers on loopback, signal recorders, stand-in mail backends."""
