"""A webhook receiver for tests/evidence.rs that parses multipart/form-data
with Python's standard MIME parser (email), independently of dshost.

Usage: multipart_receiver.py PORT OUT_DIR. For each POST it writes one JSON
line to OUT_DIR/requests.jsonl: the content type, the X-Dshost headers, and
per part its name, file name, content type, SHA-256 and the file it was
saved to (the alert part is parsed as JSON).
"""
import hashlib
import http.server
import json
import os
import sys
from email import policy
from email.parser import BytesParser

port, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
count = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        count += 1
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ctype = self.headers["Content-Type"]
        record = {
            "content_type": ctype,
            "headers": {k: v for k, v in self.headers.items() if k.lower().startswith("x-dshost")},
            "parts": {},
        }
        if ctype.startswith("multipart/form-data"):
            message = BytesParser(policy=policy.default).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
            )
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True)
                path = os.path.join(out, f"{count}-{name}")
                with open(path, "wb") as f:
                    f.write(data)
                record["parts"][name] = {
                    "filename": part.get_filename(),
                    "type": part.get_content_type(),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "path": path,
                }
                if name == "alert":
                    record["alert"] = json.loads(data)
        else:
            record["alert"] = json.loads(body)
        with open(os.path.join(out, "requests.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
