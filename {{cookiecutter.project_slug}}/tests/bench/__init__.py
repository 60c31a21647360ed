"""The benchmark tool (tools/bench/): its settings and its arithmetic."""
