"""mocapd.formats"""
