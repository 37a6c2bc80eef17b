import Foundation
import Hummingbird
import HTTPTypes

/// The web client served at `/`: one static page, no build step and nothing fetched from
/// elsewhere. A vertical swipe feed: the current clip plays (native HLS), the next three keep
/// preloading in their own (off-screen) video elements, the rest have no source yet; leaving a
/// clip posts what happened (view / complete / skip with watch_ms), a heart posts a like.
/// The token comes from `?token=` or the sign-in box and stays in localStorage.
enum WebClient {
    static func page(_ request: Request, _ context: FeedContext) -> Response {
        var h = HTTPFields()
        h[.contentType] = "text/html; charset=utf-8"
        h[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static let html = #"""
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>foryou</title>
<link rel="icon" href="data:,">
<style>
  html, body { margin: 0; height: 100%; background: #000; color: #fff; font: 15px/1.35 system-ui, sans-serif; }
  #feed { height: 100vh; overflow-y: scroll; scroll-snap-type: y mandatory; }
  .slide { height: 100vh; scroll-snap-align: start; position: relative; display: flex; align-items: center; justify-content: center; }
  .slide video { height: 100%; max-width: 100%; object-fit: contain; background: #111; }
  .caption { position: absolute; left: 16px; bottom: 24px; right: 80px; text-shadow: 0 1px 3px #000; }
  .like { position: absolute; right: 16px; bottom: 40px; font-size: 30px; background: none; border: 0; color: #fff; cursor: pointer; }
  .like.on { color: #ff3b5c; }
  #msg { position: fixed; top: 12px; left: 50%; transform: translateX(-50%); background: #b42318; padding: 8px 14px;
         border-radius: 6px; display: none; z-index: 10; max-width: 90%; }
  #signin { position: fixed; inset: 0; display: none; align-items: center; justify-content: center; flex-direction: column; gap: 10px; }
  #signin input { width: min(90vw, 520px); padding: 8px; font: inherit; }
</style></head>
<body>
<div id="msg" role="alert"></div>
<div id="signin"><div>Sign in with a token (<code>foryou token --user ID</code>)</div>
  <input id="token" placeholder="token" autocomplete="off"><button id="go">Start</button></div>
<div id="feed"></div>
<script>
"use strict";
const AHEAD = 3;                      // clips kept preloading after the current one
const feed = document.getElementById("feed"), msg = document.getElementById("msg");
const params = new URLSearchParams(location.search);
let token = params.get("token") || localStorage.getItem("foryou.token") || "";
let items = [], cursor = null, loading = false, done = false, current = -1;

function show(text) { msg.textContent = text; msg.style.display = text ? "block" : "none"; }

async function api(path, body) {
  const r = await fetch(path, { method: body ? "POST" : "GET",
    headers: Object.assign({ "Authorization": "Bearer " + token }, body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined });
  if (r.status === 401) { localStorage.removeItem("foryou.token"); signIn("The token was refused; sign in again."); throw new Error("unauthorized"); }
  if (!r.ok) { let m = "HTTP " + r.status; try { m = (await r.json()).error.message; } catch (e) {} throw new Error(m); }
  return r.status === 204 ? null : r.json();
}

function signIn(why) {
  document.getElementById("signin").style.display = "flex";
  if (why) show(why);
}

async function more() {
  if (loading || done) return;
  loading = true;
  try {
    const page = await api("/api/v1/foryou?limit=10" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    cursor = page.next_cursor; done = !cursor;
    for (const v of page.videos) add(v);
    if (!items.length) show("Nothing to watch yet.");
    if (current < 0 && items.length) setCurrent(0);
  } catch (e) {
    if (e.message !== "unauthorized") show("The feed could not be loaded: " + e.message);
  } finally { loading = false; }
}

function add(v) {
  const i = items.length;
  const slide = document.createElement("section");
  slide.className = "slide"; slide.dataset.index = i;
  const video = document.createElement("video");
  video.muted = true; video.playsInline = true; video.loop = false; video.preload = "none";
  video.addEventListener("error", () => { if (i === current) show("This video could not be played."); });
  video.addEventListener("ended", () => { if (i === current) go(i + 1); });
  const cap = document.createElement("div"); cap.className = "caption"; cap.textContent = v.caption || "";
  const like = document.createElement("button"); like.className = "like"; like.textContent = "\u2665"; like.title = "like";
  like.addEventListener("click", () => {
    if (like.classList.contains("on")) return;
    like.classList.add("on"); post([{ video_id: v.id, type: "like" }]);
  });
  slide.append(video, cap, like); feed.append(slide); observer.observe(slide);
  items.push({ v, slide, video, watched: 0, started: null });
}

function attach(it) {
  if (!it.video.src && it.v.stream_url) { it.video.preload = "auto"; it.video.src = it.v.stream_url; it.video.load(); }
}

function post(events) {
  api("/api/v1/events:batch", { events }).catch(e => show("Could not send what you did: " + e.message));
}

function leave(i) {
  const it = items[i]; if (!it) return;
  it.video.pause();
  if (it.started !== null) { it.watched += performance.now() - it.started; it.started = null; }
  const watchMs = Math.round(it.watched), dur = it.v.duration_ms || (it.video.duration * 1000) || 0;
  if (watchMs <= 0) return;
  const events = [];
  if (dur && watchMs >= 0.95 * dur) events.push({ video_id: it.v.id, type: "view", watch_ms: watchMs },
                                                 { video_id: it.v.id, type: "complete", watch_ms: Math.round(dur) });
  else if (watchMs < 2000 && (!dur || watchMs < 0.3 * dur)) events.push({ video_id: it.v.id, type: "skip", watch_ms: watchMs });
  else events.push({ video_id: it.v.id, type: "view", watch_ms: watchMs });
  it.watched = 0;
  post(events);
}

function setCurrent(i) {
  if (i === current || i < 0 || i >= items.length) return;
  if (current >= 0) leave(current);
  current = i; show("");
  const it = items[i];
  if (!it.v.stream_url) { show("This video has no stream."); return; }
  attach(it);
  it.started = performance.now();
  it.video.play().catch(e => show("Playback did not start: " + e.message));
  for (let j = i + 1; j <= i + AHEAD && j < items.length; j++) attach(items[j]);
  if (items.length - i <= AHEAD + 1) more();
}

function go(i) { if (i < items.length) items[i].slide.scrollIntoView({ behavior: "smooth" }); }

const observer = new IntersectionObserver(entries => {
  for (const e of entries) if (e.isIntersecting && e.intersectionRatio >= 0.6) setCurrent(Number(e.target.dataset.index));
}, { root: feed, threshold: [0.6] });

document.addEventListener("keydown", e => {
  if (e.key === "ArrowDown" || e.key === "j") { e.preventDefault(); go(current + 1); }
  if (e.key === "ArrowUp" || e.key === "k") { e.preventDefault(); go(current - 1); }
});
document.addEventListener("visibilitychange", () => { if (document.hidden && current >= 0) leave(current); });
document.getElementById("go").addEventListener("click", () => {
  token = document.getElementById("token").value.trim();
  if (!token) return;
  localStorage.setItem("foryou.token", token);
  document.getElementById("signin").style.display = "none"; show(""); more();
});
if (!document.createElement("video").canPlayType("application/vnd.apple.mpegurl")) {
  show("This browser cannot play HLS natively; use Safari or a recent Chromium.");
}
if (token) { localStorage.setItem("foryou.token", token); more(); } else signIn();
</script>
</body></html>
"""#
}
