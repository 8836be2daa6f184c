"""A Secrets Manager stand-in over TLS, for tests/tests/aws_tls.rs: answers every
GetSecretValue with the PEM in KEY_FILE, serving CERT/KEY (a certificate of the test's
own CA). Prints its port on stdout once listening.

usage: tls_secret_server.py CERT_PEM CERT_KEY_PEM SECRET_FILE
"""
import http.server
import json
import ssl
import sys

cert, cert_key, secret_file = sys.argv[1:4]
with open(secret_file) as f:
    secret = f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        body = json.dumps(
            {"ARN": request["SecretId"], "Name": "token-key", "SecretString": secret}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, cert_key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
