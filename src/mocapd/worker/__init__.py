"""mocapd.worker"""
