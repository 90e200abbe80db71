"""What the peers call: the equivalent of the trivial drop, and bytes there and back.

pythonia and python-shell carry no raw bytes (a Buffer reaches pythonia's Python as JSON), so
their bulk transfers are base64 text, decoded to bytes in Python and encoded again for the
way back, as a user of those bridges would have to do.
"""
import base64


def inc(x):
    return x + 1


def echo(data):
    return data


def echo_b64(text):
    return base64.b64encode(base64.b64decode(text)).decode("ascii")
