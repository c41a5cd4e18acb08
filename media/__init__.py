"""Sessionroom's media plane: ICE and TURN configuration, and the server's recording leg (a
receive-only aiortc peer whose encoded frames are taken out of aiortc undecoded)."""
