"""The socket's receiving side: bulk WebSocket frame reading and the reader thread."""
