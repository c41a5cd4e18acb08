"""Debian's Firefox (firefox-esr), headless, driven over its built-in WebDriver BiDi server:
no driver binary, a small client over aiohttp's WebSocket client. Each browser gets a fresh
profile whose prefs give it a fake camera and microphone, asked for without a prompt, and
ICE candidates on loopback; every page's console goes to a log file. It does what the browser
tests need: open a page, run script in it, click and type as a person does (trusted input
events from the browser itself), reload, resize, take a screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import aiohttp

FIREFOX = os.environ.get("SESSIONROOM_FIREFOX", "/usr/bin/firefox-esr")

PREFS: dict[str, bool | int | str] = {
    # A fake camera and microphone (a tone), given to the page without a prompt.
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    # Without these two, Firefox gathers no ICE candidates in a loopback-only namespace.
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    # Candidates on 127.0.0.1, as themselves (not as mDNS names nobody can resolve there).
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.autoplay.default": 0,  # remote audio and video play without a click
    # Nothing of a first run.
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
}

COMMAND_SECONDS = 60  # a command (a navigation included) that takes longer has hung
LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")
KEYS = {"Enter": "\ue007", "Tab": "\ue004", "Escape": "\ue00c", "Space": " "}


class BidiError(Exception):
    """A command the browser refused, or script that threw in the page."""


class Firefox:
    """One running Firefox and its WebDriver BiDi session."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        profile: Path,
        console: TextIO,
    ) -> None:
        self.process = process
        self.http = http
        self.ws = ws
        self.profile = profile
        self.console = console
        self.page_errors: list[str] = []  # uncaught exceptions in any page, in order
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._names: dict[str, str] = {}  # browsing context id -> the page's name in the log
        self._reader = asyncio.create_task(self._read())
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def launch(
        cls, console_log: Path, executable: str = FIREFOX, timeout: float = 30.0
    ) -> Firefox:
        """Start Firefox with a fresh profile; its pages' console goes to `console_log`, what
        the process itself prints to the same name with `-stderr` added."""
        profile = Path(tempfile.mkdtemp(prefix="sessionroom-firefox-"))
        (profile / "user.js").write_text(
            "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in PREFS.items())
        )
        console_log.parent.mkdir(parents=True, exist_ok=True)
        stderr_log = console_log.with_name(console_log.stem + "-stderr.log")
        env = {**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1"}
        env.pop("DISPLAY", None)
        process = await asyncio.create_subprocess_exec(
            executable,
            "--headless",
            "--no-remote",
            "--profile",
            str(profile),
            "--remote-debugging-port",
            "0",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        assert process.stderr is not None
        said: list[str] = []
        http = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(timeout):
                while not (found := LISTENING.search(said[-1] if said else "")):
                    line = await process.stderr.readline()
                    if not line:
                        raise BidiError("Firefox exited before it listened:\n" + "".join(said))
                    said.append(line.decode(errors="replace"))
                ws = await http.ws_connect(f"{found.group(1)}/session", max_msg_size=0)
        except BaseException:
            await http.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            shutil.rmtree(profile, ignore_errors=True)
            raise
        browser = cls(process, http, ws, profile, console_log.open("w", encoding="utf-8"))
        browser._drain = asyncio.create_task(_drain(process.stderr, stderr_log, said))
        try:
            await browser.send("session.new", {"capabilities": {}})
            await browser.send("session.subscribe", {"events": ["log.entryAdded"]})
        except BaseException:
            await browser.close()
            raise
        return browser

    async def send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One command; its result, or BidiError with the browser's reason."""
        command = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command] = answer
        try:
            await self.ws.send_json({"id": command, "method": method, "params": params})
            async with asyncio.timeout(COMMAND_SECONDS):
                message = await answer
        except TimeoutError:
            raise BidiError(f"{method}: no answer from Firefox in {COMMAND_SECONDS}s") from None
        finally:
            self._pending.pop(command, None)
        if message.get("type") == "error":
            raise BidiError(f"{method}: {message.get('error')}: {message.get('message')}")
        result: dict[str, Any] = message["result"]
        return result

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            answer = self._pending.get(message.get("id", -1))
            if answer is not None and not answer.done():
                answer.set_result(message)
            elif message.get("method") == "log.entryAdded":
                self._log(message["params"])
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(BidiError("the connection to Firefox closed"))

    def _log(self, entry: dict[str, Any]) -> None:
        at = entry.get("timestamp", time.time() * 1000) / 1000
        stamp = time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"
        page = self._names.get(entry.get("source", {}).get("context", ""), "?")
        kind = entry.get("method") or entry.get("type", "")
        text = entry.get("text") or ""
        self.console.write(f"{stamp} {page} {entry.get('level', '')} {kind}: {text}\n")
        if entry.get("type") == "javascript":
            self.page_errors.append(f"{page}: {text}")

    async def new_page(
        self, url: str | None = None, name: str | None = None, preload: tuple[str, ...] = ()
    ) -> FirefoxPage:
        """A window of its own (its own cookies and storage), with `preload` scripts run before
        the page's own in every document it shows."""
        user_context = (await self.send("browser.createUserContext", {}))["userContext"]
        created = await self.send(
            "browsingContext.create", {"type": "window", "userContext": user_context}
        )
        context: str = created["context"]
        self._names[context] = name or f"page{len(self._names) + 1}"
        for source in preload:
            await self.send(
                "script.addPreloadScript",
                {"functionDeclaration": f"() => {{\n{source}\n}}", "contexts": [context]},
            )
        page = FirefoxPage(self, context)
        if url is not None:
            await page.goto(url)
        return page

    async def close(self) -> None:
        with contextlib.suppress(BidiError, ConnectionError, TimeoutError):
            async with asyncio.timeout(10):
                await self.send("browser.close", {})
        await self.ws.close()
        await self.http.close()
        try:
            async with asyncio.timeout(10):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        if self._drain is not None:
            with contextlib.suppress(Exception):
                await self._drain
        self.console.close()
        shutil.rmtree(self.profile, ignore_errors=True)


async def _drain(stream: asyncio.StreamReader, path: Path, said: list[str]) -> None:
    """Keep reading what the process prints (a full pipe would stall it), into a file."""
    with path.open("w", encoding="utf-8") as out:
        out.writelines(said)
        while line := await stream.readline():
            out.write(line.decode(errors="replace"))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class FirefoxPage:
    """One window's top-level browsing context."""

    def __init__(self, browser: Firefox, context: str) -> None:
        self.browser = browser
        self.context = context

    async def goto(self, url: str) -> None:
        await self.browser.send(
            "browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"}
        )

    async def reload(self) -> None:
        await self.browser.send(
            "browsingContext.reload", {"context": self.context, "wait": "complete"}
        )

    async def evaluate(self, function: str, *args: Any) -> Any:
        """Call the JavaScript `function` in the page with `args`; its (awaited) result, both
        ways as JSON."""
        declaration = (
            "async (args) => { const value = await (" + function + ")(...JSON.parse(args));"
            " return JSON.stringify(value === undefined ? null : value); }"
        )
        result = await self._call(declaration, {"type": "string", "value": json.dumps(args)})
        return json.loads(result["value"])

    async def wait_for(
        self, function: str, *args: Any, timeout: float = 10.0, what: str = ""
    ) -> Any:
        """Call `function` until it returns something truthy (a reload in between is fine);
        that value. Fails with the last value seen when `timeout` seconds have passed."""
        last: Any = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        last = await self.evaluate(function, *args)
                    except BidiError as error:  # a document going away under the call
                        last = error
                    else:
                        if last:
                            return last
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise AssertionError(
                f"Firefox: {what or function} not true after {timeout}s (last: {last!r})"
            ) from None

    async def click(
        self,
        role: str = "button",
        name: str | None = None,
        css: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Click, with the mouse, the one enabled element with this accessible role and name
        (or matching `css`), once there is one: as a person would, so the page gets a trusted
        click."""
        element = await self._find(role, name, css, timeout)
        await self._call("(el) => el.scrollIntoView({block: 'center'})", element)
        origin = {"type": "element", "element": element}
        await self._input(
            {
                "type": "pointer",
                "id": "mouse",
                "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "x": 0, "y": 0, "origin": origin},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0},
                ],
            }
        )

    async def type(self, text: str) -> None:
        """Type into whatever has focus, key by key."""
        actions = []
        for char in text:
            actions += [{"type": "keyDown", "value": char}, {"type": "keyUp", "value": char}]
        await self._input({"type": "key", "id": "keyboard", "actions": actions})

    async def press(self, key: str) -> None:
        """Press one named key (Enter, Tab, Escape, Space) or character."""
        value = KEYS.get(key, key)
        await self._input(
            {
                "type": "key",
                "id": "keyboard",
                "actions": [{"type": "keyDown", "value": value}, {"type": "keyUp", "value": value}],
            }
        )

    async def set_viewport(self, width: int, height: int) -> None:
        await self.browser.send(
            "browsingContext.setViewport",
            {"context": self.context, "viewport": {"width": width, "height": height}},
        )

    async def screenshot(self, path: Path) -> None:
        """The whole document, as a PNG."""
        shot = await self.browser.send(
            "browsingContext.captureScreenshot", {"context": self.context, "origin": "document"}
        )
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))

    async def _find(
        self, role: str, name: str | None, css: str | None, timeout: float
    ) -> dict[str, str]:
        if css is not None:
            locator: dict[str, Any] = {"type": "css", "value": css}
        else:
            wanted = {"role": role} if name is None else {"role": role, "name": name}
            locator = {"type": "accessibility", "value": wanted}
        found: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    with contextlib.suppress(BidiError):  # a document going away meanwhile
                        nodes = await self.browser.send(
                            "browsingContext.locateNodes",
                            {"context": self.context, "locator": locator},
                        )
                        found = []
                        for node in nodes["nodes"]:
                            ref = {"sharedId": node["sharedId"]}
                            usable = await self._call(
                                "(el) => el.isConnected && !el.disabled"
                                " && el.getClientRects().length > 0",
                                ref,
                            )
                            if usable.get("value") is True:
                                found.append(ref)
                        if len(found) == 1:
                            return found[0]
                    await asyncio.sleep(0.1)
        except TimeoutError:
            what = css or f"{role} {name!r}"
            raise AssertionError(
                f"Firefox: not exactly one usable {what} after {timeout}s ({len(found)} found)"
            ) from None

    async def _call(self, declaration: str, *arguments: dict[str, Any]) -> dict[str, Any]:
        answer = await self.browser.send(
            "script.callFunction",
            {
                "functionDeclaration": declaration,
                "arguments": list(arguments),
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
        )
        if answer["type"] == "exception":
            details = answer["exceptionDetails"]
            raise BidiError(f"script threw: {details.get('text')}")
        result: dict[str, Any] = answer["result"]
        return result

    async def _input(self, source: dict[str, Any]) -> None:
        await self.browser.send(
            "input.performActions", {"context": self.context, "actions": [source]}
        )
