"""Deraining methods behind one interface: the registry, the comparison methods, the shared tiler."""
