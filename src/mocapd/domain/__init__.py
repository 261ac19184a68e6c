"""mocapd.domain"""
