"""Stage 10 with the real ``huggingface_hub`` client against a local stand-in of the Hub.

:class:`HubStandin` is a small HTTP server bound to 127.0.0.1 on a free port that
answers the four endpoints ``HfApi.create_repo`` + ``HfApi.upload_folder`` use when
``hf_xet`` is disabled (``HF_HUB_DISABLE_XET=1``): ``POST /api/repos/create``,
``POST /api/validate-yaml``, ``POST /api/models/<repo>/preupload/<rev>`` (every file
"regular", i.e. inline) and ``POST /api/models/<repo>/commit/<rev>`` (NDJSON with
base64 files, written to ``root/<repo>/``). It checks the bearer token, records every
request, refuses bodies over 64 MiB, and shuts itself down after ``lifetime`` seconds.

The upload CLI runs in a subprocess with ``HF_ENDPOINT`` pointing at the stand-in, so
nothing can reach the real Hub (``HF_HUB_OFFLINE`` must be off for the client to make
any request at all; the endpoint is local).
"""

from __future__ import annotations

import base64
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from test_pack_support import make_exp, pack_exp, run_py

SECRET = "hf_STANDINsecret0123456789abcdefXYZ"
MAX_BODY = 64 * 1024 * 1024


class HubStandin:
    """The Hub endpoints of a model upload, in a thread; use as a context manager."""

    def __init__(self, root: Path, token: str, lifetime: float = 120.0):
        self.root = Path(root)
        self.token = token
        self.requests: list[dict] = []
        self.repos: dict[str, dict] = {}
        self.commits = 0
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, code: int, obj: dict) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                n = int(self.headers.get("Content-Length") or 0)
                if n > MAX_BODY:
                    raise ValueError("body too large")
                return self.rfile.read(n)

            def do_GET(self):
                standin.requests.append({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")})
                self._reply(404, {"error": "not found"})

            def do_POST(self):
                auth = self.headers.get("Authorization")
                standin.requests.append({"method": "POST", "path": self.path.split("?")[0], "auth": auth})
                try:
                    body = self._body()
                except ValueError:
                    return self._reply(413, {"error": "too large"})
                if auth != f"Bearer {standin.token}":
                    return self._reply(401, {"error": "Invalid credentials in Authorization header"})
                path = self.path.split("?")[0]
                if path == "/api/repos/create":
                    req = json.loads(body)
                    repo_id = f"{req['organization']}/{req['name']}" if req.get("organization") else req["name"]
                    url = f"http://{self.headers['Host']}/{repo_id}"
                    if repo_id in standin.repos:
                        return self._reply(409, {"error": "You already created this model repo", "url": url})
                    standin.repos[repo_id] = {"visibility": req.get("visibility"), "type": req.get("type")}
                    return self._reply(200, {"url": url, "name": repo_id})
                if path == "/api/validate-yaml":
                    content = json.loads(body)["content"]
                    try:
                        assert content.startswith("---\n")
                        yaml.safe_load(content[4 : content.index("\n---\n", 4)])
                    except Exception as e:  # noqa: BLE001 - report any problem as the Hub would
                        return self._reply(400, {"error": f"invalid YAML metadata: {e}"})
                    return self._reply(200, {"errors": [], "warnings": []})
                parts = path.strip("/").split("/")  # api models ns name (preupload|commit) rev
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] in ("preupload", "commit"):
                    repo_id = f"{parts[2]}/{parts[3]}"
                    if repo_id not in standin.repos:
                        return self._reply(404, {"error": "Repository not found"})
                    if parts[4] == "preupload":
                        files = json.loads(body)["files"]
                        return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                                            "oid": None} for f in files]})
                    dest = standin.root / repo_id
                    for line in body.splitlines():
                        item = json.loads(line)
                        if item["key"] == "file":
                            rel = Path(item["value"]["path"])
                            assert not rel.is_absolute() and ".." not in rel.parts
                            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                            (dest / rel).write_bytes(base64.b64decode(item["value"]["content"]))
                        elif item["key"] == "header":
                            standin.repos[repo_id]["summary"] = item["value"]["summary"]
                        else:
                            return self._reply(400, {"error": f"unsupported commit entry {item['key']}"})
                    standin.commits += 1
                    oid = f"{standin.commits:040x}"
                    return self._reply(200, {"commitUrl": f"http://{self.headers['Host']}/{repo_id}/commit/{oid}",
                                             "commitOid": oid, "success": True})
                return self._reply(404, {"error": f"no such endpoint {path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._timer = threading.Timer(lifetime, self.server.shutdown)
        self._timer.daemon = True

    def __enter__(self) -> HubStandin:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    def env(self) -> dict:
        """Environment for a client process talking to this stand-in."""
        return {"HF_ENDPOINT": self.url, "HF_TOKEN": self.token, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("standinexp")
    e = make_exp(root)
    e["zip"] = pack_exp(e)
    return e


def test_upload_cli_through_real_client(packed, tmp_path):
    with HubStandin(tmp_path / "hub", SECRET) as hub:
        args = ["-m", "espnet_cls.bin.upload", "--packed_model", packed["zip"], "--hf_repo", "alice/tiny-cls",
                "--datasets", "instruments_demo", "--creator", "Alice"]
        r = run_py(args, extra_env=hub.env(), timeout=120)
        assert r.returncode == 0, r.stderr
        # second upload: the repo exists (409 -> exist_ok) and a new commit is made
        r2 = run_py([*args, "--commit_message", "again"], extra_env=hub.env(), timeout=120)
        assert r2.returncode == 0, r2.stderr
    for out in (r, r2):
        assert SECRET not in out.stdout + out.stderr
    paths = [q["path"] for q in hub.requests]
    assert paths.count("/api/repos/create") == 2 and paths.count("/api/models/alice/tiny-cls/commit/main") == 2
    assert "/api/validate-yaml" in paths and all(q["auth"] == f"Bearer {SECRET}" for q in hub.requests)
    assert hub.repos["alice/tiny-cls"]["summary"] == "again"
    repo = tmp_path / "hub" / "alice" / "tiny-cls"
    names = {p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()}
    with zipfile.ZipFile(packed["zip"]) as zf:
        assert names == set(zf.namelist()) | {"README.md"}
        assert (repo / "model.safetensors").read_bytes() == zf.read("model.safetensors")
    assert "alice/tiny-cls" in (repo / "README.md").read_text()


def test_upload_wrong_token_is_one_clear_line(packed, tmp_path):
    with HubStandin(tmp_path / "hub", "hf_the_right_one") as hub:
        env = {**hub.env(), "HF_TOKEN": SECRET}
        r = run_py(["-m", "espnet_cls.bin.upload", "--packed_model", packed["zip"], "--hf_repo", "alice/x"], extra_env=env)
    assert r.returncode == 1
    assert "upload to alice/x failed" in r.stderr and "401" in r.stderr
    assert SECRET not in r.stdout + r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "hub" / "alice").exists()
