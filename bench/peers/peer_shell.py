"""python-shell in JSON mode: one JSON request per line on stdin, one JSON answer per line on stdout."""
import json
import sys

from peer_funcs import echo_b64, inc

for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "inc":
        out = {"r": inc(req["x"])}
    else:
        out = {"r": echo_b64(req["d"])}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
