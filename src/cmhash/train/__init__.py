"""cmhash.train"""
