// talkie studio: what every part of the page shares. The REST API (with the page's ?token= carried
// on every call and link), errors shown next to the control that caused them, and the log.
// Plain JavaScript, no build step, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");

class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

// A REST call; the server's {"error", "message"} becomes an ApiError carrying its message.
async function api(method, path, body) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError("the server cannot be reached; is it running?", "unreachable", 0);
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(data.message || `HTTP ${response.status}`, data.error, response.status);
  return data;
}

// A URL of the server with the token carried (for <img>, <video> and download links).
function withToken(path) {
  if (!token) return path;
  const url = new URL(path, location.href);
  url.searchParams.set("token", token);
  return url.pathname + url.search;
}

// Show a message in the error slot next to a control (id "<name>-err"); an empty one clears it.
function showError(slot, message) {
  const el = $(`${slot}-err`);
  if (!el) return log(message, "error");
  el.textContent = message || "";
  el.classList.toggle("shown", Boolean(message));
}

// Run an action for a control: its slot is cleared first and shows the error if it fails.
async function guarded(slot, action) {
  showError(slot, "");
  try {
    return await action();
  } catch (e) {
    showError(slot, e instanceof ApiError ? e.message : String(e.message || e));
    return undefined;
  }
}

function log(text, cls) {
  const li = document.createElement("li");
  li.textContent = text;
  if (cls) li.className = cls;
  $("log").prepend(li);
  while ($("log").children.length > 200) $("log").lastChild.remove();
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function seconds(value) {
  return `${Number(value).toFixed(1)} s`;
}
