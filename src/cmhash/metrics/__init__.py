"""cmhash.metrics"""
