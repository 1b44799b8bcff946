"""Progress bars: drawn when stderr is a terminal, silent when it is not."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

LOOP = ("from prunesearch.foundation import progress\n"
        "for _ in progress.steps(range(3), total=3, label='epoch 1/2'): pass\n")


def test_bar_is_drawn_on_a_terminal():
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    subprocess.run([sys.executable, "-c", LOOP], stderr=follower, check=True)
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    assert b"epoch 1/2" in drawn and b"/3 [" in drawn


def test_nothing_is_drawn_when_stderr_is_not_a_terminal():
    result = subprocess.run([sys.executable, "-c", LOOP], capture_output=True, check=True)
    assert result.stderr == b""
