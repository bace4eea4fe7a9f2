"""The kernel's view of this namespace's TCP sockets (/proc/net/tcp), for tests that wait
for a connection to reach a state instead of sleeping."""


# TCP states as /proc/net/tcp numbers them.
TCP_ESTABLISHED, TCP_CLOSE_WAIT, TCP_LISTEN = 0x01, 0x08, 0x0A


def tcp_sockets(local_port: int) -> list:
    """This network namespace's TCP sockets on `local_port`, from /proc/net/tcp{,6}: dicts
    with the remote port, the state, the send and receive queues (for a listening socket,
    the receive queue is its accept queue: connections not accepted yet) and the inode
    (what /proc/<pid>/fd/<n> links to as ``socket:[<inode>]``)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
            if int(local.rsplit(":", 1)[1], 16) != local_port:
                continue
            tx_queue, rx_queue = (int(q, 16) for q in queues.split(":"))
            found.append({"remote_port": int(remote.rsplit(":", 1)[1], 16),
                          "state": int(state, 16), "tx_queue": tx_queue, "rx_queue": rx_queue,
                          "inode": int(fields[9])})
    return found


def accept_queue(port: int) -> int:
    """How many connections to the listening `port` wait to be accepted."""
    return sum(s["rx_queue"] for s in tcp_sockets(port) if s["state"] == TCP_LISTEN)
