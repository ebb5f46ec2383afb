"""The app template. ``monument-ws run`` serves it; ``monument-ws new DIR`` copies it (without this file)."""
