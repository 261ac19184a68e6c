"""mocapd: an asynchronous video motion-capture service."""

__version__ = "0.1.0"
