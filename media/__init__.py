"""Sessionroom's media plane: ICE configuration and, later, server-side aiortc peers."""
