"""mocapd.pipeline"""
