"""collect: issue stamped Excel forms to agencies, validate their returns, answer them and merge the results."""

__version__ = "0.1.0"
