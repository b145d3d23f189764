# linesrv.py: both sides of the line protocol of the tests' python services (kv.py,
# heap.py; run as a command, the client: see the end). A client on 127.0.0.1:PORT
# sends one line and gets one line back. One connection at a time, closed after the
# reply: an established connection is closed by policy at restore, while the listening
# socket comes back.
import select
import socket
import sys


def read_line(sock, bufsize):
    line = b""
    while not line.endswith(b"\n"):
        b = sock.recv(bufsize)
        if not b:
            break
        line += b
    return line


def serve(port, answer, idle, tick=None):
    """Forever: answer(words of the request line) is the reply line. tick() runs after
    every wait of up to idle seconds, request or not."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(16)
    print("listening", flush=True)
    while True:
        ready, _, _ = select.select([srv], [], [], idle)
        if tick:
            tick()
        if not ready:
            continue
        c, _ = srv.accept()
        c.settimeout(5)
        try:
            words = read_line(c, 4096).decode().split()
            c.sendall((answer(words) + "\n").encode())
        except OSError:
            pass
        finally:
            c.close()


def request(port, line, timeout):
    """One request; the reply line without its newline. Raises OSError."""
    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    c.sendall((line + "\n").encode())
    return read_line(c, 65536).decode().strip()


if __name__ == "__main__":
    # linesrv.py PORT LINE [TIMEOUT]: one request, the reply on stdout; nothing and
    # exit 1 when the service does not answer.
    try:
        print(request(int(sys.argv[1]), sys.argv[2],
                      float(sys.argv[3]) if len(sys.argv) > 3 else 10))
    except OSError:
        sys.exit(1)
