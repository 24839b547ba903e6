"""CL Studio: continual learning on image folders, without forgetting."""

__version__ = "0.1.0"
