"""A monument_ws app: one data provider serves HTTP and sockets alike."""

from .main import create_app

__all__ = ["create_app"]
