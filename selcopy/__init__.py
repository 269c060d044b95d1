"""selcopy: algorithmic sequence tasks, very small models, trustworthy results."""

__version__ = "0.1.0"
