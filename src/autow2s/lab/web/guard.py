"""Who may look at the dashboard: loopback clients, or anyone holding AUTOW2S_DASHBOARD_TOKEN.

Why a separate token: the dashboard is read-only, so it must not need (or reveal) the admin
token or a researcher's; a lab shared on a network sets this one and hands it to watchers.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

DASHBOARD_TOKEN_ENV = "AUTOW2S_DASHBOARD_TOKEN"
COOKIE = "autow2s_dashboard"
COOKIE_PATH = "/dashboard"


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _refuse(status: int, message: str) -> Response:
    body = (f"<!doctype html><meta charset=utf-8><title>autow2s dashboard</title>"
            f"<p style='font-family:sans-serif'>{message}</p>")
    return HTMLResponse(body, status_code=status)


def check(request: Request) -> Response | None:
    """None when the request may see the dashboard; otherwise the response to send instead.

    A token in the query (?token=...) is moved into an HttpOnly cookie and stripped from the
    URL by a redirect, so it does not linger in the address bar, history or shared links.
    """
    expected = os.environ.get(DASHBOARD_TOKEN_ENV, "")
    if not expected:
        if _is_loopback(request.client.host if request.client else None):
            return None
        return _refuse(403, f"This dashboard answers loopback clients only. To share it, set {DASHBOARD_TOKEN_ENV} "
                            "on the lab server and open /dashboard/?token=THAT_TOKEN.")
    given = request.query_params.get("token")
    if given is not None:
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return _refuse(401, "Wrong dashboard token. Ask the lab's operator for the value of "
                                f"{DASHBOARD_TOKEN_ENV}.")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + ("?" + urlencode(rest) if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, expected, httponly=True, samesite="strict", path=COOKIE_PATH)
        return response
    cookie = request.cookies.get(COOKIE, "")
    if cookie and hmac.compare_digest(cookie.encode(), expected.encode()):
        return None
    return _refuse(401, f"This dashboard needs its token: open /dashboard/?token=… with the value of "
                        f"{DASHBOARD_TOKEN_ENV} set on the lab server.")
