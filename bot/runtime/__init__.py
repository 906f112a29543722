"""The process: settings, the composition root, the web front and the embedded Redis."""
