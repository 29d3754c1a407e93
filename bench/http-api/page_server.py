"""A fast stand-in for json-server's paging: the same records (db.json's "orders"), the
same answers to GET /orders?_sort=id&_page=N&_limit=L (a JSON array, empty past the
end), but every page encoded once and then served from memory over HTTP/1.1 keep-alive.
json-server filters and sorts the whole collection on every request, so it, not the
client, bounds a benchmark; with this server the clients' own cost shows.
Usage: page_server.py DB_JSON PORT"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

db_path, port = sys.argv[1], int(sys.argv[2])
orders = sorted(json.load(open(db_path))["orders"], key=lambda r: r["id"])
pages = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path != "/orders" or q.get("_sort", "id") != "id":
            self.send_error(404)
            return
        page, limit = int(q.get("_page", 1)), int(q.get("_limit", 10))
        body = pages.get((page, limit))
        if body is None:
            body = json.dumps(orders[(page - 1) * limit: page * limit]).encode()
            pages[(page, limit)] = body
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
