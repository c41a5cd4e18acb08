"""Sessionroom's control plane: rooms, links, the waiting room and signalling."""
