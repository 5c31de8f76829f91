"""cmhash.encoders"""
