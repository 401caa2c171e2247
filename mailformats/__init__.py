"""Mail formats, sans-I/O, shared by the server and the client: delivery status notifications
(RFC 3461/3464), message disposition notifications (RFC 8098, MSSanté codes 900–906) and the
``multipart/report`` container (RFC 6522).
"""
