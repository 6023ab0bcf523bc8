"""cad2program: reads a technical drawing image into a program of geometric primitives."""

__version__ = "0.1.0"
