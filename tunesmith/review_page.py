"""A local review page (`tunesmith review serve`): listen, look, decide, annotate.

The CLI stays first-class; this page exists because reviewers judge audio by ear. It lists the
queue, and per job shows the controls, quality findings, similarity matches with offsets, an
audio player (the preview) and the spectrogram + waveform PNG, with approve/reject and
annotation forms. Decisions go through the SDK, so the workflow authorizes and audits them
exactly as for the CLI. The server binds 127.0.0.1 only; every form carries a per-process
token, so another site open in the same browser cannot post decisions.
"""

from __future__ import annotations

import asyncio
import html
import secrets
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

from activities.review import store as review_db
from activities.review.annotations import annotate_job
from infra.db import Database
from infra.settings import Settings
from infra.store import ObjectStore
from schemas.errors import JobNotFoundError, ReviewNotAllowedError, TunesmithError
from tunesmith.client import Client
from tunesmith.jobs import JobView

T = TypeVar("T")
_STYLE = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}
table{border-collapse:collapse}
td,th{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left}
.block{color:#b00020;font-weight:bold}.review{color:#a15c00}.err{color:#b00020}.ok{color:#1b5e20}
img{max-width:100%;border:1px solid #ccc}form{margin:.8rem 0}label{margin-right:1rem}"""


class ReviewPage:
    """The page's state: one event loop thread holding the SDK client and a DB pool."""

    def __init__(self, settings: Settings, *, reviewer: str = "") -> None:
        self.settings = settings
        self.default_reviewer = reviewer
        self.token = secrets.token_urlsafe(24)
        self.store = ObjectStore(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.client: Client = self.call(Client.connect(settings))
        self.db: Database = self.call(Database.open(settings, max_size=4))

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the page's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=60)

    def close(self) -> None:
        self.call(self.db.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    # --- data ------------------------------------------------------------------------------
    def queue(self, risk: str | None, tenant: str | None) -> list[Any]:
        rows = review_db.review_queue(self.db, risk=risk, tenant=tenant, older_than_s=None,
                                      limit=200)  # fmt: skip
        return self.call(rows)

    def detail(self, job_id: str) -> JobView:
        return self.call(self.client.job(job_id, db=self.db))

    def decide(
        self, job_id: str, decision: str, reviewer: str, note: str | None, token: str | None
    ) -> str:
        """Send the decision signed with `token` (default: the page's TUNESMITH_REVIEWER_TOKEN)."""
        handle = self.client.get_handle(job_id)
        if decision == "approve":
            status = self.call(handle.approve(reviewer=reviewer, note=note, token=token))
        else:
            status = self.call(
                handle.reject(reviewer=reviewer, reason=note or "rejected", token=token)
            )
        return status.stage.value

    def annotate(self, job_id: str, reviewer: str, fields: dict[str, str]) -> None:
        rating = int(fields["rating"]) if fields.get("rating") else None
        tags = [t.strip() for t in fields.get("tags", "").split(",") if t.strip()]
        self.call(annotate_job(self.db, job_id, reviewer=reviewer, tags=tags, rating=rating,
                               note=fields.get("note") or None,
                               post_edit=fields.get("post_edit") == "on"))  # fmt: skip


# --- HTML --------------------------------------------------------------------------------------
def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: str) -> bytes:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    ).encode()


def _age(since: datetime) -> str:
    minutes = int((datetime.now(UTC) - since).total_seconds() // 60)
    return f"{minutes // 1440}d" if minutes >= 1440 else f"{minutes // 60}h{minutes % 60:02d}m"


def queue_html(rows: list[Any]) -> bytes:
    lines = [
        f"<tr><td><a href='/jobs/{quote(r['job_id'])}'>{_e(r['job_id'])}</a></td>"
        f"<td>{_e(r['tenant'])}</td><td class='{_e(r['risk'])}'>{_e(r['risk'])}</td>"
        f"<td>{r['approvals']}/{r['required_approvals']}</td><td>{_age(r['created_at'])}</td>"
        f"<td>{_e(r['model_id'])}</td><td>{_e(r['prompt'][:80])}</td></tr>"
        for r in rows
    ]
    table = (
        "<table id='queue'><tr><th>job</th><th>tenant</th><th>risk</th><th>approvals</th>"
        "<th>age</th><th>model</th><th>prompt</th></tr>" + "".join(lines) + "</table>"
        if rows
        else "<p id='empty'>Nothing is waiting for review.</p>"
    )
    filters = (
        "<form method='get'><label>risk <select name='risk'><option value=''>any</option>"
        "<option>review</option><option>block</option></select></label>"
        "<label>tenant <input name='tenant'></label><button>filter</button></form>"
    )
    return _page("tunesmith review queue", f"<h1>Review queue</h1>{filters}{table}")


def detail_html(page: ReviewPage, job_id: str, view: JobView, message: str = "") -> bytes:
    job, c = view.job, view.controls
    parts = [f"<h1>{_e(job_id)}</h1><p><a href='/'>&larr; queue</a> · "
             f"<a href='{_e(view.web_ui)}'>Web UI run</a></p>"]  # fmt: skip
    if message:
        parts.append(message)
    parts.append(
        f"<p>tenant {_e(job['tenant'])} · product {_e(job['product'])} · stage "
        f"<b id='stage'>{_e(job['stage'])}</b> · review {_e(job['review_state'])}</p>"
        f"<p>prompt: {_e(job['prompt'])}</p>"
    )
    controls = ", ".join(
        f"{k} {_e(c[k])}"
        for k in ("tempo_bpm", "key", "meter", "duration_s", "mood", "seed", "model_id")
        if c.get(k) is not None
    )
    parts.append(f"<p>controls: {controls}</p>")
    parts.append(f"<p>reasons: {_e('; '.join(job['review_reasons']) or '-')}</p>")
    if (a := view.master) is not None:
        quality = (a["features"] or {}).get("quality", {})
        findings = "".join(f"<li>{_e(f)}</li>" for f in quality.get("findings", []))
        parts.append(
            f"<p>quality score <b>{_e(quality.get('score', '?'))}</b>; "
            f"{a['integrated_lufs']:.1f} LUFS, true peak {a['true_peak_dbtp']:.1f} dBTP, "
            f"{a['duration_s']:.1f} s, tempo {_e(a['tempo_bpm'])}, key "
            f"{_e(a['musical_key'])}</p><ul>{findings}</ul>"
        )
    listen = view.listen
    preview = listen.get("preview_mp3") or listen.get("published_preview")
    if preview:
        src = page.store.presigned_get(preview)
        parts.append(f"<audio id='player' controls preload='auto' src='{_e(src)}'></audio>")
    if view.overview_uri is not None:
        src = page.store.presigned_get(view.overview_uri)
        parts.append(f"<p><img id='overview' alt='spectrogram and waveform' src='{_e(src)}'></p>")
    sim = view.similarity
    if sim is not None:
        rows = "".join(
            f"<tr><td>{_e(m.title or m.recording_id)}</td><td>{_e(m.method)}</td>"
            f"<td>{m.score:.2f}</td><td class='{_e(m.risk)}'>{_e(m.risk)}</td>"
            f"<td>{m.query_offset_s:.1f} s</td><td>{m.recording_offset_s:.1f} s</td>"
            f"<td>{m.duration_s:.1f} s</td></tr>"
            for m in sim.matches
        )
        parts.append(
            f"<h2>Similarity: <span class='{_e(sim.risk)}'>{_e(sim.risk)}</span></h2>"
            f"<ul>{''.join(f'<li>{_e(r)}</li>' for r in sim.risk_reasons)}</ul>"
            + (
                "<table id='matches'><tr><th>recording</th><th>method</th><th>score</th>"
                "<th>risk</th><th>here</th><th>theirs</th><th>length</th></tr>"
                f"{rows}</table>"
                if rows
                else ""
            )
        )
    token = f"<input type='hidden' name='token' value='{page.token}'>"
    token_hint = "from TUNESMITH_REVIEWER_TOKEN" if page.settings.reviewer_token else ""
    reviewer = (
        f"<label>reviewer <input name='reviewer' required "
        f"value='{_e(page.default_reviewer)}'></label>"
    )
    parts.append(
        f"<h2>Decide</h2><form id='decide' method='post' action='/jobs/{quote(job_id)}/decision'>"
        f"{token}{reviewer}<label>reviewer token <input name='reviewer_token' type='password' "
        f"autocomplete='current-password' placeholder='{_e(token_hint)}'></label>"
        "<label>note <input name='note' size='40'></label>"
        "<button name='decision' value='approve' id='approve'>Approve</button> "
        "<button name='decision' value='reject' id='reject'>Reject</button></form>"
        f"<h2>Annotate</h2><form id='annotate' method='post' "
        f"action='/jobs/{quote(job_id)}/annotation'>{token}{reviewer}"
        "<label>tags <input name='tags' placeholder='muddy-mix,great-hook'></label>"
        "<label>rating <select name='rating'><option value=''>-</option>"
        + "".join(f"<option>{n}</option>" for n in range(1, 6))
        + "</select></label><label>note <input name='note'></label>"
        "<label><input type='checkbox' name='post_edit'> published after edit</label>"
        "<button id='save-annotation'>Save</button></form>"
    )
    audit = "".join(
        f"<li>{row['at']:%Y-%m-%d %H:%M:%S} {_e(row['action'])} {_e(row['decision'] or '')} by "
        f"{_e(row['reviewer'] or '-')}: {'accepted' if row['accepted'] else 'refused'}"
        f"{' (' + _e(row['reason']) + ')' if row['reason'] else ''}</li>"
        for row in view.audit
    )
    parts.append(f"<h2>Audit</h2><ul id='audit'>{audit}</ul>")
    return _page(f"review {job_id}", "".join(parts))


class _Handler(BaseHTTPRequestHandler):
    page: ReviewPage  # set on the subclass made by serve()

    def log_message(self, format: str, *args: Any) -> None:  # quiet; errors are shown
        return

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _job_id(self, path: str) -> tuple[str, str]:
        pieces = path.strip("/").split("/")
        return (pieces[1] if len(pieces) > 1 else ""), (pieces[2] if len(pieces) > 2 else "")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if url.path == "/":
                rows = self.page.queue(query.get("risk") or None, query.get("tenant") or None)
                return self._send(HTTPStatus.OK, queue_html(rows))
            job_id, rest = self._job_id(url.path)
            if url.path.startswith("/jobs/") and job_id and not rest:
                done = query.get("done")
                note = f"<p class='ok' id='message'>{_e(done)}</p>" if done else ""
                detail = self.page.detail(job_id)
                return self._send(HTTPStatus.OK, detail_html(self.page, job_id, detail, note))
            self._send(HTTPStatus.NOT_FOUND, _page("not found", "<p>not found</p>"))
        except JobNotFoundError as exc:
            self._send(HTTPStatus.NOT_FOUND, _page("not found", f"<p class='err'>{_e(exc)}</p>"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 64_000:
            return self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, _page("too large", ""))
        fields = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        job_id, action = self._job_id(urlsplit(self.path).path)
        if not secrets.compare_digest(fields.get("token", ""), self.page.token):
            return self._send(HTTPStatus.FORBIDDEN, _page("forbidden", "<p>bad form token</p>"))
        reviewer = fields.get("reviewer", "").strip()
        try:
            if not reviewer:
                raise ReviewNotAllowedError("a reviewer name is required")
            if action == "decision" and fields.get("decision") in ("approve", "reject"):
                stage = self.page.decide(
                    job_id, fields["decision"], reviewer, fields.get("note"),
                    fields.get("reviewer_token") or None,
                )  # fmt: skip
                done = f"{fields['decision']} by {reviewer} recorded; stage {stage}"
            elif action == "annotation":
                self.page.annotate(job_id, reviewer, fields)
                done = f"annotation by {reviewer} saved"
            else:
                return self._send(HTTPStatus.BAD_REQUEST, _page("bad request", "<p>bad form</p>"))
        except (TunesmithError, ValueError) as exc:
            message = f"<p class='err' id='message'>refused: {_e(exc)}</p>"
            try:
                body = detail_html(self.page, job_id, self.page.detail(job_id), message)
            except JobNotFoundError:
                body = _page("refused", message)
            return self._send(HTTPStatus.CONFLICT, body)
        self._send(HTTPStatus.SEE_OTHER, b"",
                   {"Location": f"/jobs/{quote(job_id)}?done={quote(done)}"})  # fmt: skip


def make_server(page: ReviewPage, port: int) -> ThreadingHTTPServer:
    """An HTTP server for `page` on 127.0.0.1:`port` (0: any free port)."""
    handler = type("ReviewHandler", (_Handler,), {"page": page})
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def serve(settings: Settings, *, port: int, reviewer: str, open_browser: bool) -> None:
    """Serve the review page until Ctrl-C."""
    import webbrowser

    page = ReviewPage(settings, reviewer=reviewer)
    server = make_server(page, port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"review page: {url} (Ctrl-C to stop)", flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        page.close()
