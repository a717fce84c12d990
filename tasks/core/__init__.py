"""The bottom layer; knows no tool and no stage.

errors, evidence (typed read-back), the runner, checks, media types, atomic writes, the
cache root, console output.
"""
