// DexNDM teleop page: streams both controllers' grip poses and buttons over a WebSocket every XR
// frame (local-floor space), shows the server's state, and reconnects by itself. No dependencies.
'use strict';

const token = new URLSearchParams(location.search).get('token') || '';
const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
  '/ws?token=' + encodeURIComponent(token);
const ui = (id) => document.getElementById(id);
const teleop = { ws: null, session: null, space: null, gl: null, seq: 0, status: null, statuses: 0,
                 sent: 0, frames: 0, retryMs: 250, lastFrameMs: 0 };
window.dexndmTeleop = teleop;  // read-only view for people and tests

function show(id, text, cls) { const el = ui(id); el.textContent = text; el.className = cls || ''; }

function connect() {
  show('connection', 'connecting', 'warn');
  const ws = new WebSocket(wsUrl);
  teleop.ws = ws;
  ws.onopen = () => { teleop.retryMs = 250; show('connection', 'connected', 'ok'); };
  ws.onmessage = (event) => {
    let msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    if (msg.type === 'status') { teleop.status = msg; teleop.statuses++; render(); }
  };
  ws.onclose = (event) => {
    teleop.status = null;
    show('connection', 'disconnected (' + event.code + '), retrying', 'bad');
    render();
    setTimeout(connect, teleop.retryMs);
    teleop.retryMs = Math.min(teleop.retryMs * 2, 4000);
  };
}

function send(obj) {
  const ws = teleop.ws;
  // Skip rather than queue when the link is slow: a late pose is worse than a missing one.
  if (!ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > 8192) return false;
  ws.send(JSON.stringify(obj));
  teleop.sent++;
  return true;
}

function render() {
  const s = teleop.status;
  if (!s) { show('deadman', '-'); show('arm', '-'); show('axis', '-'); show('policy', '-'); return; }
  show('deadman', s.following ? 'following' : 'holding' + (s.hold ? ' (' + s.hold + ')' : ''),
       s.following ? 'ok' : 'warn');
  show('arm', s.arm, s.arm === 'ok' ? 'ok' : 'bad');
  show('axis', s.axis ? s.axis_label + ' [' + s.axis.join(', ') + ']' : 'not set');
  show('policy', s.policy, s.policy === 'on' ? 'ok' : '');
}

function controller(source, frame) {
  if (!source.gripSpace || !source.gamepad) return null;
  const pose = frame.getPose(source.gripSpace, teleop.space);
  if (!pose) return null;
  const p = pose.transform.position, q = pose.transform.orientation;
  return {
    pos: [p.x, p.y, p.z], quat: [q.x, q.y, q.z, q.w],
    buttons: Array.from(source.gamepad.buttons).slice(0, 8).map((b) => b.value),
    axes: Array.from(source.gamepad.axes).slice(0, 4).map((a) => Math.max(-1, Math.min(1, a))),
  };
}

function onFrame(time, frame) {
  const session = frame.session;
  session.requestAnimationFrame(onFrame);
  teleop.frames++;
  const hands = { left: null, right: null };
  for (const source of session.inputSources) {
    if (source.handedness in hands) hands[source.handedness] = controller(source, frame);
  }
  teleop.lastFrameMs = performance.timeOrigin + time;
  send({ type: 'frame', seq: teleop.seq++, t: teleop.lastFrameMs, left: hands.left, right: hands.right });
  const gl = teleop.gl, s = teleop.status;
  const color = !s ? [0.5, 0, 0] : s.arm === 'fault' ? [0.6, 0.4, 0] : s.following ? [0, 0.35, 0] : [0.15, 0.15, 0.15];
  gl.bindFramebuffer(gl.FRAMEBUFFER, session.renderState.baseLayer.framebuffer);
  gl.clearColor(color[0], color[1], color[2], 1);
  gl.clear(gl.COLOR_BUFFER_BIT);
}

async function enterVR() {
  const session = await navigator.xr.requestSession('immersive-vr', { requiredFeatures: ['local-floor'] });
  // A fresh canvas per session: a lost WebGL context cannot be reused.
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 16;
  canvas.addEventListener('webglcontextlost', (event) => {
    event.preventDefault();
    show('xr', 'graphics context lost: press Enter VR again', 'bad');
    if (teleop.session) teleop.session.end().catch(() => {});
  });
  teleop.gl = canvas.getContext('webgl2', { xrCompatible: true }) || canvas.getContext('webgl', { xrCompatible: true });
  await session.updateRenderState({ baseLayer: new XRWebGLLayer(session, teleop.gl) });
  teleop.space = await session.requestReferenceSpace('local-floor');
  teleop.space.addEventListener('reset', () => show('xr', 'recentred', 'warn'));
  session.addEventListener('end', () => {
    teleop.session = null;
    if (ui('xr').className !== 'bad') show('xr', 'ended', 'warn');
    ui('enter').disabled = false;
  });
  teleop.session = session;
  ui('enter').disabled = true;
  show('xr', 'immersive-vr, local-floor', 'ok');
  session.requestAnimationFrame(onFrame);
}

// Outside an XR session keep the connection alive (the server closes silent connections).
setInterval(() => { if (!teleop.session) send({ type: 'idle', seq: teleop.seq++, t: performance.timeOrigin + performance.now() }); }, 200);

ui('enter').addEventListener('click', () => enterVR().catch((err) => show('xr', 'failed: ' + err.message, 'bad')));
if (navigator.xr) {
  navigator.xr.isSessionSupported('immersive-vr').then((ok) => {
    ui('enter').disabled = !ok;
    show('xr', ok ? 'ready' : 'immersive-vr not supported here', ok ? '' : 'bad');
  });
} else {
  show('xr', 'no WebXR: open this page over HTTPS or http://localhost (adb reverse)', 'bad');
}
connect();
