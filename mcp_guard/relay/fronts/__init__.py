"""The guard's own faces toward clients: stdio (`run`) and streamable HTTP (`serve`)."""
