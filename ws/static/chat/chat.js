// Nylon chat: a WebSocket client for the `chat` example function.
// The function sends JSON {"from": ..., "text": ...} for messages; notices
// come as {"system": ...} or from "system"; anything else is shown as it
// came.
(function () {
  'use strict';

  var $ = function (id) { return document.getElementById(id); };
  var sock = null;

  function setStatus(state, text) {
    var s = $('status');
    s.dataset.state = state;
    s.textContent = text || state;
  }

  function setSendable(on) {
    $('message').disabled = !on;
    $('send').disabled = !on;
  }

  function add(kind, text, from) {
    var li = document.createElement('li');
    li.className = kind;
    if (from !== undefined) {
      var b = document.createElement('span');
      b.className = 'from';
      b.textContent = from + ':';
      li.appendChild(b);
    }
    li.appendChild(document.createTextNode(text));
    var list = $('messages');
    list.appendChild(li);
    list.scrollTop = list.scrollHeight;
  }

  function render(data) {
    if (typeof data !== 'string') {
      add('raw', '[binary message, ' + (data.size || data.byteLength || 0) + ' bytes]');
      return;
    }
    var m;
    try { m = JSON.parse(data); } catch (e) { add('raw', data); return; }
    if (m && typeof m === 'object' && typeof m.system === 'string') {
      add('system', m.system);
    } else if (m && typeof m === 'object' && typeof m.text === 'string' && m.from === 'system') {
      add('system', m.text);
    } else if (m && typeof m === 'object' && typeof m.text === 'string') {
      add('chat', m.text, m.from === undefined || m.from === null ? '?' : String(m.from));
    } else {
      add('raw', data);
    }
  }

  function socketURL(room, name) {
    // Relative to the page, so the page works under any mount point:
    // /chat/ -> /chat/ws.
    var u = new URL('ws', window.location.href);
    u.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    u.search = new URLSearchParams({ room: room, name: name }).toString();
    u.hash = '';
    return u.toString();
  }

  function join(ev) {
    ev.preventDefault();
    if (sock) {
      var old = sock;
      sock = null;
      old.close(1000, 'switching room');
    }
    var room = $('room').value.trim() || 'lobby';
    var name = $('name').value.trim() || 'anonymous';
    setStatus('connecting');
    setSendable(false);
    var s = new WebSocket(socketURL(room, name));
    sock = s;
    s.onopen = function () {
      if (sock !== s) { return; }
      setStatus('open');
      setSendable(true);
      $('message').focus();
    };
    s.onmessage = function (e) {
      if (sock === s) { render(e.data); }
    };
    s.onclose = function (e) {
      if (sock !== s) { return; }
      sock = null;
      setSendable(false);
      setStatus('closed', 'closed (' + e.code + (e.reason ? ' ' + e.reason : '') + ')');
    };
  }

  function send(ev) {
    ev.preventDefault();
    var text = $('message').value;
    if (!text || !sock || sock.readyState !== WebSocket.OPEN) { return; }
    sock.send(text);
    $('message').value = '';
  }

  var q = new URLSearchParams(window.location.search);
  if (q.get('room')) { $('room').value = q.get('room'); }
  if (q.get('name')) { $('name').value = q.get('name'); }
  $('join-form').addEventListener('submit', join);
  $('send-form').addEventListener('submit', send);
}());
