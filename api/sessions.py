"""The two routes that set and clear the session cookie (served by serve.py beside the pages).

A Streamlit script cannot set an `HttpOnly` cookie, so after the sign-in form succeeds the page
sends the browser here: `GET /session/start?code=...&next=/queue` exchanges the one-time hand-off
code (minted by `application.sessions.sign_in`, valid for a minute, in this process only) for
the signed session cookie and redirects to the page the user asked for. `GET /session/end`
ends the cookie's session (the sign-out button has usually ended it already) and clears the
cookie. Both refuse requests another site started (`Sec-Fetch-Site: cross-site`), so a link
elsewhere can neither sign a browser in as someone else nor sign it out.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from application import sessions
from application.context import Context
from data.db import thread_cursor

_LOCAL_PATH = re.compile(r"^/(?![/\\])[^\s\\]*$")


def _next(request: Request) -> str:
    wanted = request.query_params.get("next") or "/"
    return wanted if _LOCAL_PATH.match(wanted) and len(wanted) <= 2_000 else "/"


def _foreign(request: Request) -> bool:
    return request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")


def _refused() -> Response:
    return PlainTextResponse("Refused: this request came from another site.", status_code=403)


def start(request: Request) -> Response:
    if _foreign(request):
        return _refused()
    response = RedirectResponse(_next(request), status_code=303)
    cookie = sessions.redeem_handoff(request.query_params.get("code"))
    if cookie is not None:
        lifetime = sessions.expiry(Context(thread_cursor(), "server")).absolute_hours * 3600
        response.set_cookie(sessions.COOKIE_NAME, cookie, max_age=lifetime, path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")
    response.headers["Cache-Control"] = "no-store"
    return response


def end(request: Request) -> Response:
    if _foreign(request):
        return _refused()
    sessions.sign_out(Context(thread_cursor(), "server"), request.cookies.get(sessions.COOKIE_NAME))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(sessions.COOKIE_NAME, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    response.headers["Cache-Control"] = "no-store"
    return response


routes = [Route("/session/start", start, methods=["GET"]), Route("/session/end", end, methods=["GET"])]
