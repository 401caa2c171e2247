"""Hygie's certificate authority in the image of IGC-Santé (gamme Élémentaire): root and
intermediate CAs with keys encrypted at rest, certificate profiles, TLS contexts."""
