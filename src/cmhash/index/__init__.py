"""cmhash.index"""
