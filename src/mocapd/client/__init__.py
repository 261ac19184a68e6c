"""mocapd.client"""
