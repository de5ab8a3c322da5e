"""The link checker service: is a saved url reachable, without letting anyone reach inside.

``guard`` decides which addresses may be contacted (no SSRF); ``checker`` resolves, vets and
pins each hop's address, then asks the server with HEAD (GET when HEAD is refused).
"""
