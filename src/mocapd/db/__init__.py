"""mocapd.db"""
