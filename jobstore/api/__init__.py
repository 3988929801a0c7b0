"""HTTP facades over the core. Facades never import each other and never touch SQL."""
