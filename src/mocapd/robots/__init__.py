"""mocapd.robots"""
