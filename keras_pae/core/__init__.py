"""The shared core: command-line boundary, run directories, devices, config base, plots, tables, optimizers, initializers, losses.

Nothing here imports the data, the evaluation or a paper's package.
"""
