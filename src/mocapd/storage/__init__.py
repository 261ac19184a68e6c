"""mocapd.storage"""
