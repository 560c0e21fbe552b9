"""The cases, one module per version, block and role under test; importing one registers its cases."""
