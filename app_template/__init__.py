"""The app template, shipped as ``monument_ws.app_template``: ``monument-ws run`` serves it,
``monument-ws new DIR`` copies it (without this file)."""
