"""The contract: primitives and programs, their geometry, dataset folders and the token vocabulary."""
