"""cmhash.service"""
