"""mocapd.api"""
