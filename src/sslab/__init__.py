"""sslab: self-supervised representation learning -- train, explain, reproduce."""

__version__ = "0.1.0"
